"""The sandbox under attack: each fault is contained, killed or refused; the host is unharmed."""

import os
import socket
import threading
from pathlib import Path

import pytest

from emergent.cli import main
from emergent.errors import SandboxLimitError
from emergent.tools.sandbox import EXIT_CODES, Limits, Sandbox, isolation

FAST = Limits(timeout=3, cpu_seconds=2, memory_mb=256, output_bytes=50_000, processes=32)
BACKENDS = ["bwrap", "unshare"] if isolation()["bubblewrap"] else ["unshare"]


@pytest.fixture(params=BACKENDS)
def box(request, tmp_path):
    return Sandbox(FAST, root=tmp_path / "sbx", backend=request.param)


def test_runs_code_and_reports_its_isolation(box):
    res = box.python("import sys; print(sum(range(10)), file=sys.stdout)", files={"in.txt": "x"})
    assert res.ok and res.stdout == "45\n" and res.isolation == box.level
    assert res.isolation in ("process", "network", "namespace")


def test_infinite_loop_is_killed(box):
    res = box.python("while True: pass", limits=Limits(timeout=1.5, cpu_seconds=1))
    assert res.killed_by in ("cpu", "timeout") and res.duration_s < 4
    with pytest.raises(SandboxLimitError, match="limit"):
        res.check()


def test_memory_bomb_is_stopped(box):
    res = box.python("x = bytearray(2 * 1024 * 1024 * 1024)")
    assert res.killed_by == "memory" and not res.ok


def test_fork_bomb_is_contained(box):
    res = box.python("import os\nwhile True:\n    os.fork()")
    assert not res.ok and res.killed_by in ("processes", "timeout", "cpu")
    assert os.getpid() > 0  # still here


def test_output_flood_is_capped(box):
    res = box.python("while True: print('x' * 1000)")
    assert res.killed_by == "output" and res.truncated and len(res.stdout) <= FAST.output_bytes


def test_parent_environment_is_not_visible(box, monkeypatch):
    monkeypatch.setenv("EMERGENT_SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    res = box.python("import os, sys\nprint(dict(os.environ))\n"
                     "try:\n    print(open(f'/proc/{os.getppid()}/environ').read())\n"
                     "except OSError as e:\n    print('refused', e.errno)", env={"EMERGENT_X": "1", "MINE": "ok"})
    assert "hunter" not in res.stdout and "EMERGENT_" not in res.stdout and "MINE" in res.stdout


def test_writing_outside_the_work_directory_is_refused(box, tmp_path):
    if not isolation()["drops_privileges"]:
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
    if not isolation()["network_namespace"]:
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
    from emergent.errors import ConfigError

    box = Sandbox(FAST, backend="unshare")
    with pytest.raises(ConfigError, match="needs isolation 'namespace'"):
        box.run(["/bin/true"], require="namespace")


@pytest.mark.skipif(not isolation()["bubblewrap"], reason="bubblewrap is not installed or cannot run here")
def test_bubblewrap_hides_the_host_filesystem(tmp_path):
    (tmp_path / "secret.txt").write_text("s3cret")
    res = Sandbox(FAST, backend="bwrap").python(f"print(open({str(tmp_path / 'secret.txt')!r}).read())")
    assert res.returncode != 0 and "s3cret" not in res.stdout and res.isolation == "namespace"


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
    assert "killed by the timeout limit" in capsys.readouterr().err
