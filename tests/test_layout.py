"""The packages' import graphs run one way: the layout is the architecture diagram.

Every import of a project module is counted, at module level and inside
functions, relative or absolute, so a lazy import cannot hide a cycle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# speaker_id's stages in the direction data flows; a module may import its own
# stage and the stages before it, never one after it.
STAGES = ("_lazy", "frontend", "models", "store", "scoring", "operations", "evaluation", "demo", "cli", "__main__")


def _module_name(path, package):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(package):
    """``{module: set of project modules it imports}`` for every module of ``package``."""
    paths = sorted((ROOT / package).rglob("*.py"))
    modules = {_module_name(p, package): p for p in paths}
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import sub` imports the submodule when there is one
                candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in candidates:
                while target and target not in modules:  # `import a.b.c` where a.b.c is a name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or ``None``."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _without_package_inits(graph, package):
    """Package ``__init__`` modules re-export their children; leave those edges out."""
    inits = {name for name in graph if (ROOT / name.replace(".", "/") / "__init__.py").exists()}
    return {name: {t for t in targets if t not in inits or not t.startswith(package)}
            for name, targets in graph.items() if name not in inits}


def test_find_cycle_sees_a_cycle_and_its_absence():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", ["streamgmm", "speaker_id"])
def test_no_import_cycles(package):
    graph = _without_package_inits(import_graph(package), package)
    assert graph, f"no modules found under {ROOT / package}"
    assert find_cycle(graph) is None


def test_streamgmm_file_format_knows_no_estimator():
    graph = import_graph("streamgmm")
    assert not {t for t in graph["streamgmm.io"] if t.startswith("streamgmm")}
    assert graph["streamgmm.stats"] <= {"streamgmm.io"}
    assert "streamgmm.estimators" not in graph["streamgmm.sklearn_compat"]


def _stage(module):
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 else None


def test_speaker_id_stages_import_only_upstream():
    graph = import_graph("speaker_id")
    stages_found = {m.split(".")[1] for m in graph if "." in m}
    assert stages_found == set(STAGES), "a module outside the declared stages: add it to STAGES in flow order"
    backwards = [
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if target.startswith("speaker_id.") and _stage(module) is not None and _stage(target) > _stage(module)
    ]
    assert backwards == []


def test_stage_check_catches_a_downstream_import():
    assert _stage("speaker_id.scoring.stream") > _stage("speaker_id.frontend.streaming")
    assert _stage("speaker_id.operations") > _stage("speaker_id.store.files")
