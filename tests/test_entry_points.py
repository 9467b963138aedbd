"""The command's entry points: ``speaker-id --version`` and ``python -m speaker_id``."""

import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

import streamgmm
from speaker_id.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _source_version():
    """The version pyproject.toml takes from streamgmm/__init__.py (dynamic = ["version"])."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'version\s*=\s*\{\s*attr\s*=\s*"streamgmm.__version__"\s*\}', pyproject)
    return streamgmm.__version__


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    printed = capsys.readouterr().out.strip()
    assert re.fullmatch(r"speaker-id \d+\.\d+\.\d+\S*", printed)
    try:
        installed = version("streamgmm")
    except PackageNotFoundError:  # an uninstalled checkout reports its source's version
        installed = _source_version()
    assert printed == f"speaker-id {installed}"
    assert installed == _source_version()


def test_python_dash_m_speaker_id_runs_the_command(tmp_path):
    run = [sys.executable, "-m", "speaker_id"]
    out = subprocess.run([*run, "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"speaker-id {_source_version()}"
    listed = subprocess.run([*run, "list", "--store", str(tmp_path / "none")], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert listed.returncode == 4  # a store problem, reported by the same main() as speaker-id's
    assert listed.stderr.startswith("speaker-id: error:") and len(listed.stderr.strip().splitlines()) == 1
