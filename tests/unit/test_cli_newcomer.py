"""A newcomer's first hour on the command line: mistakes are one or two lines with a hint and exit
2, never a traceback; the CLI starts fast; a workspace is what it says it is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EMERGENT = str(Path(sys.executable).with_name("emergent"))


def cli(*args: str, home: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    argv = [EMERGENT, *args, *(["--home", str(home)] if home is not None else [])]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=full)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both and "╭" not in both and 'File "' not in both, both


@pytest.mark.parametrize(("args", "says"), [
    (("memroy",), "Did you mean 'memory'"),
    (("memory", "recall"), "Missing argument"),
    (("memory", "recall", "tea", "--k", "abc"), "--k"),
    (("tools", "call"), "Missing argument"),
    (("--frobnicate",), "No such option"),
])
def test_a_usage_mistake_is_two_lines_with_a_hint_and_exit_2(args, says):
    proc = cli(*args)
    no_traceback(proc)
    assert proc.returncode == 2, proc
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 2 and lines[0].startswith("error:") and says in lines[0], lines
    assert lines[-1].startswith("hint:")


@pytest.mark.parametrize("args", [(), ("memory",), ("graph",)])
def test_a_bare_command_group_prints_its_help(args):
    proc = cli(*args)
    no_traceback(proc)
    assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_help_text_is_never_parsed_as_markup():
    proc = cli("graph", "sync", "--help")
    no_traceback(proc)
    assert proc.returncode == 0 and "Usage: emergent graph sync" in proc.stdout


def test_version():
    from emergent import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"emergent {__version__}"


def test_a_workspace_that_does_not_exist_is_an_error_unless_created(tmp_path):
    missing = tmp_path / "nope" / "ws"
    proc = cli("status", home=missing)
    no_traceback(proc)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "emergent init" in proc.stderr
    assert not missing.exists()
    assert cli("init", str(missing)).returncode == 0 and missing.is_dir()
    other = tmp_path / "other"
    proc = cli("--create", "memory", "remember", "x", home=other, env={"EMERGENT_EMBEDDER": "hashing"})
    assert proc.returncode == 0, proc.stderr
    assert other.is_dir()


def test_a_workspace_path_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "passwd"
    f.write_text("root:x:0:0")
    proc = cli("status", home=f)
    no_traceback(proc)
    assert proc.returncode == 2 and "is a file" in proc.stderr


def test_the_cli_starts_in_under_half_a_second_beside_python_itself():
    def fastest(argv: list[str]) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            best = min(best, time.perf_counter() - t0)
        return best

    python = fastest([sys.executable, "-c", "pass"])
    for args in (["--version"], ["--help"]):
        assert fastest([EMERGENT, *args]) - python < 0.5


def test_a_memory_remembered_by_one_command_is_there_for_the_next(tmp_path):
    home = tmp_path / "ws"
    assert cli("init", str(home)).returncode == 0
    env = {"EMERGENT_EMBEDDER": "hashing"}
    mid = cli("memory", "remember", "the kettle is blue", home=home, env=env).stdout.strip().splitlines()[-1]
    proc = cli("memory", "recall", "kettle", home=home, env=env)
    assert proc.returncode == 0 and mid in proc.stdout and "kettle is blue" in proc.stdout


def test_status_shows_health_counts_and_the_embedder_in_use(tmp_path):
    import json

    from emergent import Workstation

    home = tmp_path / "ws"
    with Workstation.open(home, embedder="hashing") as ws:
        ws.memory.ingest(["one fact", "another fact"])
    proc = cli("status", "--json", home=home)  # EMERGENT_EMBEDDER unset: auto
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["embedder"].startswith("hashing") and info["embedder_setting"] == "auto"
    assert info["counts"]["long_term_memories"] == 2 and info["stm"] == "sqlite" and info["healthy"]


def test_a_workspace_reopens_with_the_embedder_it_was_built_with(tmp_path):
    from emergent import Workstation

    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        ws.memory.ingest(["a note"])
    with Workstation.open(tmp_path / "ws") as ws:  # what a job's kernel does: no embedder named
        assert ws.embedder.id.startswith("hashing") and ws.memory.recall("note", k=1)


def test_a_file_is_ingested_with_progress_and_a_count(tmp_path):
    home = tmp_path / "ws"
    notes = tmp_path / "notes.md"
    notes.write_text("Lakes stratify in summer.\n\nPerch eat zooplankton.\n\nIce cover ends in April.\n")
    proc = cli("--create", "memory", "ingest", str(notes), home=home, env={"EMERGENT_EMBEDDER": "hashing"})
    assert proc.returncode == 0 and "stored 3 memories" in proc.stdout, proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    proc = cli("memory", "ingest", str(bad), home=home)
    no_traceback(proc)
    assert proc.returncode == 2 and "bad.jsonl:2 is not JSON" in proc.stderr
