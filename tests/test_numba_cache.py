"""Numba's cache lives in a per-user directory, never in the package; unwritable places fall back in one line."""

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from streamgmm import OnlineGMM, numba_cache

ROOT = Path(__file__).resolve().parents[1]

# Fits a small model in a fresh interpreter and prints its mean log-likelihood.
FIT = """
import numpy as np
from streamgmm import OnlineGMM
import speaker_id  # its kernels are declared (and would need a cache) at import too
X = np.random.default_rng(0).normal(size=(500, 3))
print(repr(OnlineGMM(2, covariance_type="diag", random_state=0).fit(X).score(X)))
"""


def _expected_score():
    X = np.random.default_rng(0).normal(size=(500, 3))
    return OnlineGMM(2, covariance_type="diag", random_state=0).fit(X).score(X)


def _copy_packages(destination, *, writable_pycache):
    """The two packages copied to ``destination``; a file named ``__pycache__`` makes its folder uncreatable."""
    for package in ("streamgmm", "speaker_id"):
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    if not writable_pycache:
        for folder in [destination / "streamgmm", destination / "speaker_id", *(destination / "speaker_id").rglob("*/")]:
            if (folder / "__init__.py").exists():
                (folder / "__pycache__").write_text("not a directory")
    return destination


def _run(code, packages, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(packages), PYTHONDONTWRITEBYTECODE="1", **env_changes)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=packages, capture_output=True, text=True,
                          timeout=600)


def _cache_files(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if p.suffix in (".nbi", ".nbc"))


@pytest.mark.parametrize("temporary_dir", ["writable", "unwritable"])
def test_read_only_install_with_unwritable_home_imports_and_computes(tmp_path, temporary_dir):
    packages = _copy_packages(tmp_path / "site", writable_pycache=False)
    code = FIT
    if temporary_dir == "unwritable":
        code = "import tempfile; tempfile.tempdir = '/dev/null/no-tmp'\n" + code
    result = _run(code, packages, HOME="/dev/null/no-home")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(_expected_score(), rel=1e-12)
    notice = result.stderr.strip().splitlines()
    assert len(notice) == 1, result.stderr
    assert "/dev/null/no-home" in notice[0] and "not writable" in notice[0] and "NUMBA_CACHE_DIR" in notice[0]
    if temporary_dir == "writable":
        assert "for this process only" in notice[0]
    else:
        assert "compile on every run" in notice[0]
    assert _cache_files(packages) == []


def test_kernels_are_cached_in_the_user_cache_dir_and_never_in_the_package(tmp_path):
    packages = _copy_packages(tmp_path / "site", writable_pycache=True)
    cache_home = tmp_path / "cache"
    result = _run(FIT, packages, HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(cache_home))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert float(result.stdout) == pytest.approx(_expected_score(), rel=1e-12)
    assert _cache_files(cache_home / "streamgmm" / "numba")  # index and compiled kernels
    assert _cache_files(packages) == []


def test_a_writable_numba_cache_dir_of_the_user_is_kept(tmp_path):
    environ = {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}
    assert numba_cache.choose_cache_dir(environ) == (str(tmp_path / "mine"), None)
    assert numba_cache.configure(environ) is True
    assert environ == {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}


def test_unset_numba_cache_dir_becomes_the_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(numba_cache, "default_cache_dir", lambda: str(tmp_path / "user-cache"))
    environ = {}
    assert numba_cache.configure(environ) is True
    assert environ == {"NUMBA_CACHE_DIR": str(tmp_path / "user-cache")}
    assert (tmp_path / "user-cache").is_dir()


def test_an_unwritable_numba_cache_dir_falls_back_with_one_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(numba_cache, "default_cache_dir", lambda: str(tmp_path / "user-cache"))
    (tmp_path / "file").write_text("")
    environ = {"NUMBA_CACHE_DIR": str(tmp_path / "file" / "cache")}  # under a file: cannot exist
    assert numba_cache.configure(environ) is True
    assert environ["NUMBA_CACHE_DIR"] == str(tmp_path / "user-cache")
    [record] = caplog.records
    assert "NUMBA_CACHE_DIR=" in record.getMessage() and "not a writable directory" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_nothing_writable_turns_caching_off(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(numba_cache, "default_cache_dir", lambda: str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "file" / "tmp"))
    directory, notice = numba_cache.choose_cache_dir({})
    assert directory is None and "compile on every run" in notice
    environ = {}
    assert numba_cache.configure(environ) is False
    assert environ == {}


def _cache_keywords(path):
    """The ``cache=`` arguments of every call in a source file, as source text."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        ast.unparse(keyword.value)
        for node in ast.walk(tree) if isinstance(node, ast.Call)
        for keyword in node.keywords if keyword.arg == "cache"
    ]


def test_every_kernel_takes_the_shared_cache_setting():
    found = {}
    for package in ("streamgmm", "speaker_id"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for value in _cache_keywords(path):
                found.setdefault(value, []).append(str(path.relative_to(ROOT)))
    assert set(found) == {"CACHE"}, found
    assert len(found["CACHE"]) >= 10  # every kernel module was seen
