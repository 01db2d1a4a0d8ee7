"""``emergent workflows`` as a user runs it: the installed console script in a subprocess on a temporary
workspace (hashing embedder, no model: offline). Templates listed and run with ``--input``, runs and one
run shown, a run waiting for a person's approval resumed after it, another cancelled; every user
mistake (bad YAML, a cycle, an unknown reference, a missing input, an unknown run) is one error line
and a hint, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EMERGENT = str(Path(sys.executable).with_name("emergent"))
WRITE_SPEC = """\
name: note-writer
inputs: {text: hello}
steps:
  - id: draft
    kind: tool
    tool: files.write
    args: {path: notes/draft.md, content: "${inputs.text}"}
  - id: check
    kind: tool
    tool: files.read
    args: {path: "${steps.draft.output.path}"}
    output: str
outputs: {text: "${steps.check.output}"}
"""


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # rich tables in this process: one row per line


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {**os.environ, "EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing", "COLUMNS": "220",
            "NO_COLOR": "1"}


def emergent(env: dict[str, str], *args: str, timeout: float = 120) -> Any:
    return subprocess.run([EMERGENT, "workflows", *args], env=env, capture_output=True, text=True, timeout=timeout)


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``emergent ARGV`` in this process (fast): exit code, stdout, stderr. An exception that is not a
    friendly exit propagates and fails the test."""
    from emergent.cli import main

    saved = sys.argv[:]
    try:
        code = int(main(list(argv)) or 0)  # the console script exits with what main returns
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv[:] = saved  # main() sets sys.argv for its sub-command lookup
    out, err = capsys.readouterr()
    return code, out, err


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return command(capsys, "workflows", *args)


def test_a_template_runs_with_inputs_from_the_installed_command(env: dict[str, str]) -> None:
    p = emergent(env, "run", "incident_triage", "--input", "incident=South Pier logger clock is late",
                 "--input", "severity=low")
    assert p.returncode == 0, p.stdout + p.stderr
    run_id = re.search(r"run (wf-[0-9a-f]+) \(incident_triage\): completed", p.stdout).group(1)  # type: ignore[union-attr]
    from emergent import Workstation

    with Workstation.open(Path(env["EMERGENT_HOME"]), embedder="hashing") as ws:
        assert ws.workflows.get(run_id).principal == ws.principal.key


def test_templates_are_listed_with_their_required_inputs_and_a_run_is_shown(capsys: pytest.CaptureFixture[str],
                                                                           wws: Any) -> None:
    code, out, _ = cli(capsys, "templates")
    assert code == 0 and "incident*" in out and 'severity="high"' in out
    for name in ("incident_triage", "literature_digest", "notebook_report_chain", "proposal_experiment_loop"):
        assert name in out
    run = wws.workflows.run("incident_triage", {"incident": "a pump alarm", "severity": "low"}, principal=wws.principal)
    code, out, _ = cli(capsys, "show", run.id)
    assert code == 0 and f"incident_triage run {run.id}: completed" in out and '"severity": "low"' in out
    assert re.search(r"escalate\s+│\s+tool\s+│\s+skipped", out) and re.search(r"file\s+│\s+tool\s+│\s+completed", out)
    code, out, _ = cli(capsys, "runs", "--json", "--status", "completed")
    assert [r["id"] for r in json.loads(out)] == [run.id]
    code, out, _ = cli(capsys, "runs")
    assert code == 0 and re.search(rf"{run.id}\s+│\s+incident_triage\s+│\s+completed\s+│\s+6/6", out), out


def test_a_run_waiting_for_approval_resumes_after_it_and_another_is_cancelled(capsys: pytest.CaptureFixture[str],
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             home: Path, tmp_path: Path) -> None:
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    with Workstation.open(home) as ws:  # an agent's writes wait for a person (the default policy)
        ws.principals.agent("writer", created_by=ws.principal)
    spec = tmp_path / "writer.yaml"
    spec.write_text(WRITE_SPEC)

    monkeypatch.setenv("EMERGENT_PRINCIPAL", "agent:writer")
    code, out, _ = cli(capsys, "run", str(spec), "--input", "text=first draft")
    assert code == 0 and "waiting_approval" in out, out
    run_id, approval = re.search(r"emergent approvals approve (\S+), then emergent workflows resume (\S+)",
                                 out).group(2, 1)  # type: ignore[union-attr]
    assert not (home / "files" / "notes" / "draft.md").exists()
    code, out, _ = cli(capsys, "run", str(spec))
    other = re.search(r"then emergent workflows resume (\S+)", out).group(1)  # type: ignore[union-attr]

    monkeypatch.delenv("EMERGENT_PRINCIPAL")  # a person decides
    code, out, err = command(capsys, "approvals", "approve", approval)
    assert code == 0, err
    code, out, _ = cli(capsys, "resume", run_id, "--json")  # the agent's step runs as the agent, once
    assert code == 0 and json.loads(out[out.index("{"):])["outputs"] == {"text": "first draft"}
    assert (home / "files" / "notes" / "draft.md").read_text() == "first draft"

    code, out, _ = cli(capsys, "cancel", other)
    assert code == 0 and out.strip() == f"cancelled {other}"
    code, out, _ = cli(capsys, "resume", other)
    assert code == 1 and "cancelled" in out, out
    code, out, _ = cli(capsys, "show", other, "--json")
    assert json.loads(out)["status"] == "cancelled"


@pytest.mark.parametrize(("spec", "message"), [
    ("name: x\nsteps:\n  - id: a\n   kind: tool\n", "not valid YAML"),
    ("name: x\nsteps:\n  - {id: a, kind: tool, tool: files.read, needs: [b]}\n"
     "  - {id: b, kind: tool, tool: files.read, needs: [a]}\n", "cycle: a → b → a"),
    ("name: x\nsteps:\n  - {id: a, kind: tool, tool: files.read, args: {path: '${steps.nope.output}'}}\n",
     "step 'a': field 'args': refers to step 'nope', which does not exist"),
    ("name: x\nsteps:\n  - {id: a, kind: tool, tool: files.read, retries: -1}\n", "step 'a': field 'retries'"),
    ("name: x\nsteps:\n  - {id: a, kind: tool, tool: files.read, colour: red}\n", "step 'a': field 'colour'"),
])
def test_a_broken_spec_is_one_error_line_naming_what_to_fix(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            spec: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(spec)
    code, _, err = cli(capsys, "validate", str(path))
    assert code == 2 and message in err and err.startswith("error: "), err


@pytest.mark.parametrize(("args", "message"), [
    (("run", "incident_triage"), "needs input 'incident'"),
    (("run", "incident_triag"), "no workflow named 'incident_triag'"),
    (("run", "incident_triage", "--input", "incident"), "input 'incident' is not NAME=VALUE"),
    (("run", "nowhere/flow.yaml"), "no workflow file 'nowhere/flow.yaml'"),
    (("show", "wf-nope"), "no workflow run 'wf-nope'"),
    (("resume", "wf-nope"), "no workflow run 'wf-nope'"),
])
def test_user_mistakes_on_the_command_line_are_friendly(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                                        message: str) -> None:
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err and "hint: " in err, err


def test_a_shipped_template_file_validates(capsys: pytest.CaptureFixture[str]) -> None:
    from emergent.workflows import templates

    code, out, _ = cli(capsys, "validate", str(templates.path("literature_digest")))
    assert code == 0 and out.strip() == "valid: literature_digest (version 1), 6 steps"


def test_a_mistake_in_the_installed_command_prints_no_traceback(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text("name: x\nsteps:\n  - {id: a, kind: tool, tool: files.read, needs: [a]}\n")
    p = emergent(env, "validate", str(path))
    assert p.returncode == 2 and p.stderr.startswith("error: cycle: a → a"), p.stderr
    assert "Traceback" not in p.stdout + p.stderr


def test_ctrl_c_pauses_the_run_after_its_running_step_and_resume_runs_only_the_rest(env: dict[str, str], home: Path,
                                                                                   tmp_path: Path) -> None:
    import signal
    import time

    from emergent import Workstation

    spec = tmp_path / "slow.yaml"
    spec.write_text("name: slow\nsteps:\n"
                    "  - {id: a, kind: tool, tool: python, args: {code: \"import time; time.sleep(2); print('a')\"}}\n"
                    "  - {id: b, kind: tool, tool: files.write, args: {path: b.txt, content: \"${steps.a.output.stdout}\"}}\n")
    p = subprocess.Popen([EMERGENT, "workflows", "run", str(spec)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    with Workstation.open(home, embedder="hashing") as ws:
        deadline = time.monotonic() + 60
        while not any(s.key == "a" and s.status == "running" for r in ws.workflows.runs(limit=1) for s in r.steps):
            assert time.monotonic() < deadline and p.poll() is None, p.communicate()
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)  # while step a runs
        _, err = p.communicate(timeout=60)
        assert p.returncode == 130 and "interrupted: pausing run" in err and "Traceback" not in err, err
        run = ws.workflows.runs(limit=1)[0]
        assert run.status == "paused" and [s.status for s in run.steps] == ["completed", "pending"]
        done = ws.workflows.resume(run.id, principal=ws.principal)  # `emergent workflows resume` does this
        assert [(s.status, s.attempt) for s in done.steps] == [("completed", 1), ("completed", 1)]  # a ran once
    assert (home / "files" / "b.txt").read_text() == "a\n"


def test_a_ctrl_c_that_lands_while_the_run_starts_still_pauses_it_and_says_how_to_resume(wws: Any) -> None:
    """Deterministic: the SIGINT is sent to this process from inside ``start()`` (where the flaky timing of
    a real Ctrl-C could put it); the run is paused after its running step, not left running or silent."""
    import signal

    import typer

    from emergent.cli.workflows import _wait
    from emergent.workflows import Workflow

    wf = Workflow.build("starting")
    a = wf.tool("a", "python", args={"code": "import time; time.sleep(0.5)"})
    wf.tool("b", "files.write", args={"path": "b.txt", "content": "b"}, needs=[a.id])

    def start() -> str:
        run_id: str = wws.workflows.start(wf, principal=wws.principal)
        os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler at the next bytecode: still in start
        return run_id

    with pytest.raises(typer.Exit) as info:
        _wait(wws, start, None)
    assert info.value.exit_code == 130
    run = wws.workflows.runs(limit=1)[0]
    assert run.status == "paused" and [s.status for s in run.steps] == ["completed", "pending"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    done = wws.workflows.resume(run.id, principal=wws.principal)
    assert [(s.status, s.attempt) for s in done.steps] == [("completed", 1), ("completed", 1)]
    assert (wws.path / "files" / "b.txt").read_text() == "b"
