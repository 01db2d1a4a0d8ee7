"""The sandbox under attack: each fault is contained, killed or refused; the host is unharmed.

Every limit is checked under each way the sandbox can be set up on this machine: bubblewrap, and
the unshare backend with each kill mechanism forced (pid namespace, subreaper, cgroup, process
group). The escape attacks (setsid, double fork, daemons) are in tests/security/test_sandbox_escapes.py.
"""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from emergent.cli import main
from emergent.errors import ConfigError, SandboxLimitError, ValidationError
from emergent.tools import sandbox as sandbox_mod
from emergent.tools.sandbox import EXIT_CODES, KILLS, Limits, Sandbox, isolation

FAST = Limits(timeout=3, cpu_seconds=2, memory_mb=256, output_bytes=50_000, processes=32)
INFO = isolation()
#: (backend, kill mechanism, how the pid namespace is made: None = as this machine does it)
SETUPS = [("bwrap", "auto", None), ("unshare", "pid-namespace", None), ("unshare", "pid-namespace", "supervisor"),
          ("unshare", "subreaper", None), ("unshare", "cgroup", None), ("unshare", "process-group", None)]
IDS = ["bwrap" if b == "bwrap" else f"{k}-{via}" if via else k for b, k, via in SETUPS]


def available(backend: str, kill: str, via: str | None = None) -> str | None:
    """Why this set-up cannot run here (None: it can)."""
    if backend == "bwrap":
        return None if INFO["bubblewrap"] else "bubblewrap is not installed or cannot run here"
    if via == "supervisor" and INFO["pid_namespace_via"] not in ("parent", "supervisor"):
        return "no pid namespace here"
    return None if kill in INFO["kill_mechanisms"] else f"kill mechanism {kill} is not available here"


@pytest.fixture(params=SETUPS, ids=IDS)
def box(request, tmp_path, monkeypatch):
    backend, kill, via = request.param
    if reason := available(backend, kill, via):
        pytest.skip(reason)
    if via:  # as root the thread makes the namespace itself; force the supervisor an unprivileged user gets
        monkeypatch.setattr(sandbox_mod, "isolation", lambda: {**INFO, "pid_namespace_via": via})
    return Sandbox(FAST, root=tmp_path / "sbx", backend=backend, kill=kill)


def test_runs_code_and_reports_its_isolation_and_kill_mechanism(box):
    res = box.python("import sys; print(sum(range(10)), file=sys.stdout)", files={"in.txt": "x"})
    assert res.ok and res.stdout == "45\n" and res.isolation == box.level
    assert res.isolation in ("process", "network", "namespace")
    assert res.kill == box.kill_mechanism == ("pid-namespace" if box.kill == "auto" else box.kill)
    assert res.to_dict()["kill"] == res.kill


def test_exit_status_passes_through(box):
    res = box.shell("echo out; echo err >&2; exit 7")
    assert res.returncode == 7 and res.stdout == "out\n" and res.stderr == "err\n" and res.killed_by is None


def test_a_signal_death_passes_through(box):
    res = box.python("import os, signal; print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGTERM)")
    if box.kill_mechanism == "pid-namespace":  # the program is PID 1 of its namespace (bubblewrap: 2)
        assert res.stdout.split() == (["2"] if box.level == "namespace" else ["1"])
        if box.level != "namespace":  # PID 1 ignores a signal it sends itself without a handler
            assert res.returncode == 0
    else:
        assert res.returncode == -15 and res.killed_by is None


def test_infinite_loop_is_killed(box):
    res = box.python("while True: pass", limits=Limits(timeout=1.5, cpu_seconds=1))
    assert res.killed_by in ("cpu", "timeout") and res.duration_s < 4
    with pytest.raises(SandboxLimitError, match="limit"):
        res.check()


def test_timeout_kills_a_sleeper_promptly(box):
    res = box.run(["sleep", "30"], limits=Limits(timeout=0.5))
    assert res.killed_by == "timeout" and res.duration_s < 2
    if box.kill in ("subreaper", "cgroup", "process-group"):
        assert res.returncode == -9  # the supervisor relays how the program died


def test_memory_bomb_is_stopped(box):
    res = box.python("x = bytearray(2 * 1024 * 1024 * 1024)")
    assert res.killed_by == "memory" and not res.ok


def test_file_size_limit_is_reported(box):
    res = box.python("open('big', 'wb').write(b'x' * (3 * 1024 * 1024))", limits=Limits(file_size_mb=1))
    assert res.killed_by == "file_size" and not res.ok


def test_fork_bomb_is_contained(box):
    res = box.python("import os\nwhile True:\n    os.fork()")
    assert not res.ok and res.killed_by in ("processes", "timeout", "cpu")
    assert os.getpid() > 0  # still here
    assert box.run(["/bin/true"]).ok  # and the next run is not starved of processes


def test_output_flood_is_capped(box):
    res = box.python("while True: print('x' * 1000)")
    assert res.killed_by == "output" and res.truncated and len(res.stdout) <= FAST.output_bytes


def test_stdin_is_passed(box):
    res = box.python("import sys; print(sys.stdin.read().upper())", stdin="hello")
    assert res.ok and res.stdout == "HELLO\n"


def test_parent_environment_is_not_visible(box, monkeypatch):
    monkeypatch.setenv("EMERGENT_SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    res = box.python("import os, sys\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())",
                     env={"EMERGENT_X": "1", "MINE": "ok"})
    assert res.ok and "hunter" not in res.stdout and "EMERGENT_" not in res.stdout and "MINE" in res.stdout


def test_writing_outside_the_work_directory_is_refused(box, tmp_path):
    if not INFO["drops_privileges"]:
        pytest.skip("only a root-started sandbox drops to an unprivileged user")
    target = tmp_path / "outside.txt"
    res = box.python(f"open({str(target)!r}, 'w').write('pwned')")
    assert not target.exists()  # refused (nobody may not write there) or written to a private /tmp
    assert "PermissionError" in res.stderr or "FileNotFoundError" in res.stderr or box.level == "namespace"
    etc = box.python("open('/etc/emergent-pwned', 'w').write('x')")
    assert etc.returncode != 0 and not Path("/etc/emergent-pwned").exists()
    ok = box.python("open('inside.txt', 'w').write('fine')")
    assert ok.ok and ok.files == ["inside.txt"]


def test_network_connections_fail_without_network(box):
    if not INFO["network_namespace"]:
        pytest.skip("no network namespace on this machine")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    threading.Thread(target=lambda: srv.accept(), daemon=True).start()
    res = box.python(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)")
    srv.close()
    assert res.returncode != 0 and ("unreachable" in res.stderr or "Errno" in res.stderr)


def test_requiring_more_isolation_than_available_is_refused(tmp_path):
    box = Sandbox(FAST, backend="unshare")
    with pytest.raises(ConfigError, match="needs isolation 'namespace'"):
        box.run(["/bin/true"], require="namespace")


@pytest.mark.skipif(not INFO["bubblewrap"], reason="bubblewrap is not installed or cannot run here")
def test_bubblewrap_hides_the_host_filesystem(tmp_path):
    (tmp_path / "secret.txt").write_text("s3cret")
    res = Sandbox(FAST, backend="bwrap").python(f"print(open({str(tmp_path / 'secret.txt')!r}).read())")
    assert res.returncode != 0 and "s3cret" not in res.stdout and res.isolation == "namespace"
    assert res.kill == "pid-namespace"


# ---------------------------------------------------------------- what is reported, what is refused
def test_isolation_reports_the_kill_mechanisms_this_machine_has():
    kills = INFO["kill_mechanisms"]
    assert kills[-1] == "process-group" and [k for k in KILLS if k in kills] == kills
    assert ("pid-namespace" in kills) == INFO["pid_namespace"] == (INFO["pid_namespace_via"] is not None)
    if INFO["pid_namespace"]:  # the cheap way needs root; without it, a supervisor
        assert INFO["pid_namespace_via"] == ("parent" if INFO["drops_privileges"] else "supervisor")
    assert ("subreaper" in kills) == INFO["subreaper"]
    assert ("cgroup" in kills) == (INFO["cgroup"] is not None)
    assert INFO["kill"] == ("pid-namespace" if INFO["bubblewrap"] else kills[0])
    json.dumps(INFO)  # the CLI prints it


def test_the_default_sandbox_gets_the_strongest_kill_mechanism():
    assert Sandbox().kill_mechanism == INFO["kill"]
    assert Sandbox(backend="unshare").kill_mechanism == INFO["kill_mechanisms"][0]


def test_forcing_a_kill_mechanism_this_machine_lacks_is_refused(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "isolation", lambda: {**INFO, "cgroup": None,
                                                           "kill_mechanisms": ["subreaper", "process-group"]})
    with pytest.raises(ConfigError, match="kill mechanism 'cgroup' is not available") as exc:
        Sandbox(FAST, backend="unshare", kill="cgroup").run(["/bin/true"])
    assert "kill='auto'" in exc.value.hint
    assert Sandbox(FAST, backend="unshare").kill_mechanism == "subreaper"


def test_unknown_or_contradictory_options_are_refused():
    with pytest.raises(ValidationError, match="unknown kill mechanism"):
        Sandbox(kill="nice-words")
    with pytest.raises(ValidationError, match="bubblewrap always kills through its pid namespace"):
        Sandbox(backend="bwrap", kill="subreaper")
    with pytest.raises(ValidationError, match="unknown isolation level"):
        Sandbox(require="total")


def test_the_pid_namespace_made_by_our_thread_leaves_our_later_children_alone():
    if INFO["pid_namespace_via"] != "parent":
        pytest.skip("the pid namespace is not made by our own thread here")
    res = Sandbox(FAST, backend="unshare").python("import os; print(os.getpid())")
    assert res.stdout == "1\n"  # the program was PID 1 of its own namespace
    mine = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert int(mine.stdout) > 1  # and this thread forks into our own namespace again
    seen = []
    thread = threading.Thread(target=lambda: seen.append(Sandbox(FAST, backend="unshare").run(["/bin/true"]).ok))
    thread.start()
    thread.join()
    assert seen == [True]


def test_requiring_keeps_backend_and_kill_mechanism():
    box = Sandbox(FAST, backend="unshare", kill="subreaper").requiring("network")
    assert (box.backend, box.kill, box.require) == ("unshare", "subreaper", "network")


def test_forcing_a_kill_mechanism_skips_bubblewrap():
    if "subreaper" not in INFO["kill_mechanisms"]:
        pytest.skip("no subreaper here")
    box = Sandbox(FAST, kill="subreaper")
    assert box.kill_mechanism == "subreaper" and box.level != "namespace"


# ---------------------------------------------------------------- CLI
def cli(*args):
    """Exit status as the `emergent` console script would give it (sys.exit(main()))."""
    try:
        return main(list(args))
    except SystemExit as exc:
        return exc.code


def test_cli_exits_with_the_command_status(capsys):
    assert cli("sandbox", "run", "--timeout", "3", "--", "sh", "-c", "echo out; echo err >&2; exit 7") == 7
    out = capsys.readouterr()
    assert out.out == "out\n" and "err" in out.err


def test_cli_reports_a_limit_with_a_distinct_status(capsys):
    assert cli("sandbox", "run", "--timeout", "0.5", "--", "sleep", "5") == EXIT_CODES["timeout"]
    err = capsys.readouterr().err
    assert "killed by the timeout limit" in err and f"kill: {INFO['kill']}" in err


def test_cli_verbose_run_shows_isolation_and_kill_mechanism(capsys):
    if "subreaper" not in INFO["kill_mechanisms"]:
        pytest.skip("no subreaper here")
    assert cli("sandbox", "run", "-v", "--kill", "subreaper", "--", "sh", "-c", "echo hi") == 0
    out = capsys.readouterr()
    assert out.out == "hi\n" and "kill: subreaper" in out.err
    assert f"isolation: {'network' if INFO['network_namespace'] else 'process'}" in out.err


def test_cli_shows_isolation(capsys):
    assert cli("sandbox", "isolation") in (0, None)
    shown = json.loads(capsys.readouterr().out)
    assert shown["kill"] == INFO["kill"] and shown["kill_mechanisms"] == INFO["kill_mechanisms"]
    assert shown["level"] == INFO["level"]
