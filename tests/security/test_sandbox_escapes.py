"""Escapes from the sandbox, each named after the attack and tried with real processes.

The promise under attack: when a run ends (its main process exits, or the timeout or the output cap
stops it) every process it started is gone, whatever it did to detach (``setsid``, double fork,
daemonising, ignoring SIGTERM, closing its pipes), and it could not reach the network, the
parent's secrets or the host filesystem meanwhile.

Each attack runs under every set-up this machine has: bubblewrap, and the ``unshare`` backend with
each kill mechanism forced (``pid-namespace``, ``subreaper``, ``cgroup``); a set-up the machine
lacks is skipped with the reason. The plain process-group kill is the control: it must lose to the
double fork, which shows the attack and the detection are real. Survivors are found by a random
token in their command line (``/proc/<pid>/cmdline`` is visible from the host even for processes in
another pid namespace) and by sentinel files a detached process writes after a delay.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from emergent.tools import sandbox as sandbox_mod
from emergent.tools.sandbox import KILLS, Limits, Sandbox, isolation, python_executable

INFO = isolation()
LIMITS = Limits(timeout=4, cpu_seconds=4, memory_mb=256, output_bytes=50_000, processes=32)
#: (backend, kill mechanism, how the pid namespace is made: None = as this machine does it)
SETUPS = [("bwrap", "auto", None), ("unshare", "pid-namespace", None), ("unshare", "pid-namespace", "supervisor"),
          ("unshare", "subreaper", None), ("unshare", "cgroup", None)]
DELAY = 0.6  # how long a detached process waits before it writes its sentinel
ROOT = Path(__file__).resolve().parents[2]


def _unavailable(backend: str, kill: str) -> str | None:
    if backend == "bwrap":
        return None if INFO["bubblewrap"] else "bubblewrap is not installed or cannot run here"
    return None if kill in INFO["kill_mechanisms"] else f"kill mechanism {kill} is not available here"


@pytest.fixture(autouse=True)
def _pid_namespace_via(request, monkeypatch):
    """A set-up with a ``via``: force how the pid namespace is made (as root our thread makes it;
    ``supervisor`` is the way an unprivileged user gets, exercised here too)."""
    setup = getattr(getattr(request.node, "callspec", None), "params", {}).get("box")
    if setup and setup[2]:
        monkeypatch.setattr(sandbox_mod, "isolation", lambda: {**INFO, "pid_namespace_via": setup[2]})


@pytest.fixture
def token():
    """A random marker put into the attacking program's source, hence into the command line of
    every process it forks; whatever still carries it after the test is killed (by pid)."""
    tok = f"escape-{uuid.uuid4().hex}"
    yield tok
    for pid in survivors(tok):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=SETUPS, ids=["bwrap" if b == "bwrap" else f"{k}-{via}" if via else k for b, k, via in SETUPS])
def box(request, tmp_path):
    backend, kill, _ = request.param
    if reason := _unavailable(backend, kill):
        pytest.skip(reason)
    return Sandbox(LIMITS, root=tmp_path / "sbx", backend=backend, kill=kill)


def keeping(box: Sandbox) -> Sandbox:
    """The same set-up, keeping the working directory (to look for sentinels after the run)."""
    return Sandbox(box.limits, root=box.root, backend=box.backend, kill=box.kill, keep_workdir=True)


@pytest.fixture
def workdirs():
    """Working directories kept for inspection (the runs use keep_workdir); removed afterwards."""
    kept: list[Path] = []
    yield kept
    for path in kept:
        shutil.rmtree(path, ignore_errors=True)


def survivors(tok: str) -> list[int]:
    """Live processes (not zombies) whose command line carries ``tok``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if tok.encode() in cmdline:
            found.append(int(entry))
    return found


def settle(tok: str, timeout: float = 2.0) -> list[int]:
    """Wait (up to ``timeout``) until nothing carries ``tok``; returns what is still there."""
    end = time.monotonic() + timeout
    while (left := survivors(tok)) and time.monotonic() < end:
        time.sleep(0.02)
    return left


def detacher(tok: str, main: str = "pass", *, prelude: str = "", delay: float = DELAY) -> str:
    """A program that starts a daemon (fork, setsid, fork, stdio to /dev/null, chdir /) which
    writes ``started`` at once and ``sentinel`` after ``delay`` seconds, waits until the daemon has
    started, then runs ``main``. It prints its working directory first."""
    return f"""
import os, signal, sys, time
TOKEN = {tok!r}
cwd = os.getcwd()
print(cwd, flush=True)
{prelude}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.chdir("/")
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        open(os.path.join(cwd, "started"), "w").write(str(os.getpid()))
        time.sleep({delay})
        open(os.path.join(cwd, "sentinel"), "w").write("escaped")
        time.sleep(60)
        os._exit(0)
    os._exit(0)
os.wait()
for _ in range(500):
    if os.path.exists(os.path.join(cwd, "started")):
        break
    time.sleep(0.01)
{main}
"""


def run_detacher(box: Sandbox, tok: str, workdirs: list[Path], main: str = "pass", *, prelude: str = "",
                 delay: float = DELAY, **kw):
    res = keeping(box).python(detacher(tok, main, prelude=prelude, delay=delay), **kw)
    workdir = Path(res.stdout.splitlines()[0]) if res.stdout else None
    assert workdir is not None and workdir.is_dir(), f"the attack did not start: {res}"
    workdirs.append(workdir)
    assert (workdir / "started").exists(), f"the daemon never started, so the test proves nothing: {res}"
    return res, workdir


def sentinel_written(workdir: Path, wait: float = DELAY + 0.8) -> bool:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        if (workdir / "sentinel").exists():
            return True
        time.sleep(0.02)
    return (workdir / "sentinel").exists()


# ---------------------------------------------------------------- detaching from the run
def test_double_fork_after_setsid_does_not_survive_the_run(box, token, workdirs):
    res, _ = run_detacher(box, token, workdirs)
    assert res.ok and res.kill == box.kill_mechanism
    assert settle(token) == [], f"a setsid + double-forked process outlived the run ({res.kill})"


def test_double_fork_after_setsid_does_not_survive_the_timeout(box, token, workdirs):
    res, workdir = run_detacher(box, token, workdirs, "time.sleep(60)", limits=Limits(timeout=1.0), delay=1.2)
    assert res.killed_by == "timeout" and res.duration_s < 2.5
    assert settle(token) == []
    assert not sentinel_written(workdir, wait=1.0)  # due 0.2 s after the timeout


def test_daemonised_grandchild_cannot_write_a_file_after_the_run(box, token, workdirs):
    res, workdir = run_detacher(box, token, workdirs)
    assert res.ok and res.duration_s < DELAY  # the run ended before the daemon's write was due
    assert not sentinel_written(workdir), f"a daemon wrote after the run ended ({res.kill})"


def test_process_group_kill_alone_loses_to_a_double_fork(tmp_path, token, workdirs):
    """The control: the last-resort mechanism is beaten by this attack, and the test sees it."""
    box = Sandbox(LIMITS, root=tmp_path / "sbx", backend="unshare", kill="process-group", keep_workdir=True)
    res, workdir = run_detacher(box, token, workdirs)
    assert res.ok and res.kill == "process-group"
    assert survivors(token), "the double-forked daemon should have escaped a process-group kill"
    assert sentinel_written(workdir)


def test_fork_bomb_is_contained_and_cleaned_up(box, token):
    bomb = f"""
import os, time
TOKEN = {token!r}
while True:
    try:
        if os.fork() == 0:
            os.setsid()  # every child leaves the process group
    except OSError:
        time.sleep(0.005)
"""
    res = box.python(bomb, limits=Limits(timeout=2, cpu_seconds=2, processes=32))
    assert not res.ok and res.killed_by in ("processes", "timeout", "cpu")
    assert settle(token) == [], f"fork bomb processes outlived the run ({res.kill})"
    assert box.run(["/bin/true"]).ok  # the next run is not starved of processes


def test_process_ignoring_sigterm_is_killed(box, token, workdirs):
    stubborn = "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)"
    res, workdir = run_detacher(box, token, workdirs, "while True:\n    time.sleep(0.1)",
                                prelude=stubborn, limits=Limits(timeout=1.0), delay=1.2)
    assert res.killed_by == "timeout" and res.duration_s < 3
    assert settle(token) == []
    assert not sentinel_written(workdir, wait=1.0)


def test_closing_stdout_and_stderr_early_then_exiting_leaves_nothing_running(box, token, workdirs):
    code = f"""
import os, time
TOKEN = {token!r}
cwd = os.getcwd()
print(cwd, flush=True)
os.close(1)
os.close(2)
if os.fork() == 0:  # a background child without any of the run's pipes
    time.sleep({DELAY})
    open(os.path.join(cwd, "sentinel"), "w").write("escaped")
    time.sleep(60)
    os._exit(0)
open(os.path.join(cwd, "started"), "w").write("1")
"""
    res = keeping(box).python(code)
    workdir = Path(res.stdout.strip())
    workdirs.append(workdir)
    assert (workdir / "started").exists()
    assert res.ok and res.duration_s < DELAY  # the run ends when the main process does, not at EOF
    assert settle(token) == []
    assert not sentinel_written(workdir)


def test_closing_stdout_and_stderr_early_then_running_on_is_stopped_by_the_timeout(box, token):
    code = f"import os, time\nTOKEN = {token!r}\nos.close(1)\nos.close(2)\nwhile True:\n    time.sleep(0.1)"
    res = box.python(code, limits=Limits(timeout=1))
    assert res.killed_by == "timeout" and 1 <= res.duration_s < 2.5
    assert settle(token) == []


# ---------------------------------------------------------------- reaching out of the run
def test_network_is_off_even_to_a_local_listener(box):
    if not INFO["network_namespace"]:
        pytest.skip("no network namespace on this machine: the level says process")
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.settimeout(0.2)
    accepted: list[object] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                conn, peer = srv.accept()
                accepted.append(peer)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the listener is real: we can reach it from outside
        deadline = time.monotonic() + 2
        while len(accepted) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(accepted) == 1
        res = box.python(f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=2)
    print('CONNECTED')
except OSError as exc:
    print('refused', exc.errno)
""")
    finally:
        done.set()
        thread.join(2)
        srv.close()
    assert res.ok and "refused" in res.stdout and "CONNECTED" not in res.stdout
    assert len(accepted) == 1 and res.isolation in ("network", "namespace")


def test_environment_has_no_emergent_keys_or_secrets(box, monkeypatch):
    monkeypatch.setenv("EMERGENT_SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    monkeypatch.setenv("OPENAI_API_KEY", "hunter4")
    res = box.python("import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ', 'rb').read())",
                     env={"EMERGENT_SNEAKY": "1", "MINE": "ok"})
    assert res.ok and "MINE" in res.stdout
    for leak in ("hunter", "EMERGENT_", "AWS_SECRET", "OPENAI"):
        assert leak not in res.stdout


def test_cannot_write_outside_its_workdir(box, tmp_path, token, workdirs):
    if not (INFO["drops_privileges"] or box.level == "namespace"):
        pytest.skip("without root (no drop to nobody) and without bubblewrap the program may write "
                    "wherever the user may (the level says so)")
    targets = [tmp_path / f"{token}.txt", Path("/etc") / f"{token}.txt", Path("/root") / f"{token}.txt",
               ROOT / f"{token}.txt"]
    code = "import os\nprint(os.getcwd())\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('pwned')\nexcept OSError as exc:\n    print('refused', exc.errno)\n"
        for t in targets) + "open('inside.txt', 'w').write('fine')\n"
    res = keeping(box).python(code)
    workdirs.append(Path(res.stdout.splitlines()[0]))
    assert [t for t in targets if t.exists()] == []
    assert res.ok and res.files == ["inside.txt"]


def test_cannot_read_the_parents_proc_environ(box):
    if not (INFO["drops_privileges"] or box.level == "namespace"
            or (box.kill_mechanism == "pid-namespace" and INFO["private_proc"])):
        pytest.skip("as the same user, without a private /proc, the parent's environ is readable "
                    "(the level says so)")
    parent = os.getpid()
    assert Path(f"/proc/{parent}/environ").read_bytes()  # there is something to steal
    res = box.python(f"""
try:
    data = open('/proc/{parent}/environ', 'rb').read()
    print('READ', len(data), data[:200])
except OSError as exc:
    print('refused', exc.errno)
""")
    assert res.ok and res.stdout.startswith("refused"), res.stdout


# ---------------------------------------------------------------- without root
def _userns_allowed() -> bool:
    def read(path: str, default: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return default

    return (int(read("/proc/sys/user/max_user_namespaces", "1")) > 0
            and read("/proc/sys/kernel/unprivileged_userns_clone", "1") == "1"
            and read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0") == "0")


NOBODY_SCRIPT = """
import json, os, sys, types
sys.path.insert(0, ROOT)
import emergent
# the sandbox modules need only the standard library; emergent.tools/__init__.py needs pydantic,
# which this bare interpreter lacks, so the package is entered without running it
tools = types.ModuleType("emergent.tools")
tools.__path__ = [os.path.join(ROOT, "emergent", "tools")]
sys.modules["emergent.tools"] = tools
from emergent.tools import sandbox as sbx
info = sbx.isolation()
setups = [("bwrap", "auto")] if info["bubblewrap"] else []
setups += [("unshare", kill) for kill in info["kill_mechanisms"] if kill != "process-group"]
runs = {}
for backend, kill in setups:
    box = sbx.Sandbox(sbx.Limits(timeout=4), backend=backend, kill=kill, keep_workdir=True)
    res = box.python(CODE)
    runs[backend + "/" + kill] = {"stdout": res.stdout, "kill": res.kill, "isolation": res.isolation,
                                  "ok": res.ok, "stderr": res.stderr[-300:]}
print(json.dumps({"info": info, "runs": runs}))
"""


@pytest.mark.skipif(not INFO["drops_privileges"], reason="needs root to start a process as nobody")
def test_without_root_a_user_namespace_gives_the_same_kill_guarantee(token, workdirs):
    """The sandbox started by an unprivileged user: levels reported honestly, and no set-up it
    offers lets a setsid + double-forked daemon outlive the run."""
    script = NOBODY_SCRIPT.replace("ROOT", repr(str(ROOT)), 2).replace("CODE", repr(detacher(token)))

    def as_nobody() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    proc = subprocess.run([python_executable(), "-I", "-S", "-c", script], preexec_fn=as_nobody,  # noqa: PLW1509
                          cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "Permission denied" in proc.stderr:
        pytest.skip(f"nobody cannot read this checkout: {proc.stderr[-200:]}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    info, runs = report["info"], report["runs"]
    assert info["drops_privileges"] is False and info["user"] != "nobody"
    assert info["kill"] in KILLS and info["kill_mechanisms"][-1] == "process-group"
    assert info["cgroup"] is None or os.access(info["cgroup"], os.W_OK)
    if _userns_allowed():
        assert info["user_namespace"] and info["pid_namespace"] and info["network_namespace"]
        assert info["kill"] == "pid-namespace" and info["level"] in ("network", "namespace")
    else:
        assert not info["pid_namespace"] and info["level"] in ("process", "namespace")
    assert runs, "no set-up ran"
    for name, run in runs.items():
        assert run["ok"], (name, run)
        workdir = Path(run["stdout"].splitlines()[0])
        workdirs.append(workdir)
        assert (workdir / "started").exists(), (name, run)
        assert run["kill"] == (name.split("/")[1] if not name.startswith("bwrap") else "pid-namespace")
    assert settle(token) == [], "a daemon outlived a run started without root"
    assert not any(sentinel_written(w, wait=0) for w in workdirs)
    time.sleep(DELAY + 0.3)
    assert not any((w / "sentinel").exists() for w in workdirs)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_sandbox_does_not_kill_unrelated_children_of_this_process(box, token, workdirs):
    """A detached child of *ours* (like a daemonised redis-server a test fixture started) is not
    the run's business: sweeping the run's orphans must leave it alone."""
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        run_detacher(box, token, workdirs)
        assert settle(token) == []
        assert bystander.poll() is None, "the sandbox killed a process it did not start"
    finally:
        bystander.kill()
        bystander.wait()
