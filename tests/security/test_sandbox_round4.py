"""Fourth round of attacks on the sandbox, each named after the attack and tried with real processes
under every set-up this machine has (the ``box`` fixture of :mod:`.test_sandbox_escapes`).

The promises under attack (the sandbox's module docstring): the wall-clock timeout ends the run and
the caller gets its result; the disk limit counts the working directory's files; the caller gets an
``emergent.errors`` error, never a bare one, for arguments it cannot run; nothing of the run is left
and nothing outside the working directory is looked at on the run's behalf.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from emergent.errors import EmergentError
from emergent.tools.sandbox import Limits, isolation, python_executable

from . import test_sandbox_escapes as _escapes

#: every set-up this machine has, and the pid-namespace variants (the escape tests' fixtures)
box, _pid_namespace_via = _escapes.box, _escapes._pid_namespace_via

INFO = isolation()


def _in_thread(fn, wait: float) -> tuple[bool, list[Any]]:
    """Call ``fn`` in a daemon thread; (did it return within ``wait`` seconds, [result or exception])."""
    out: list[Any] = []

    def go() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - the outcome is checked by the caller
            out.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(wait)
    return not t.is_alive(), out


def _first_line_dir(res) -> Path:
    return Path(res.stdout.splitlines()[0])


# ---------------------------------------------------------------- hanging the caller
def test_stdin_larger_than_the_pipe_to_a_program_that_never_reads_it_does_not_hang_past_the_timeout(box):
    """The sandbox wrote all of ``stdin`` (a tool argument an agent chooses) into the pipe before it
    started watching the clock: a program that never reads stdin left that write blocked once the
    pipe buffer (64 KiB) was full, and the caller hung until the program chose to exit (for ever,
    for ``while True: sleep``); the timeout never fired."""
    done, out = _in_thread(lambda: box.python("import time\ntime.sleep(15)", stdin="x" * (1 << 20),
                                              limits=Limits(timeout=1)), wait=8)
    assert done, "the caller hung writing stdin, past the 1 s timeout"
    [res] = out
    assert not isinstance(res, BaseException), res
    assert res.killed_by == "timeout" and res.duration_s < 4


def test_stdin_larger_than_the_pipe_still_reaches_a_program_that_reads_it(box):
    """The control: a program that reads all of a large stdin gets every byte."""
    data = "".join(chr(97 + i % 26) for i in range(300_000))
    res = box.python("import sys, hashlib\nd = sys.stdin.read()\nprint(len(d), hashlib.sha256(d.encode()).hexdigest())",
                     stdin=data)
    import hashlib

    assert res.ok and res.stdout.split() == [str(len(data)), hashlib.sha256(data.encode()).hexdigest()], res


def _unblock_fifos() -> None:
    """A caller stuck opening a FIFO for reading is freed by a writer; then the FIFO is removed."""
    for entry in Path("/tmp").glob("emergent-sbx-*"):
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(entry.lstat().st_mode):
                fd = os.open(entry, os.O_WRONLY | os.O_NONBLOCK)
                time.sleep(0.2)
                os.close(fd)
                entry.unlink()


def test_a_workdir_replaced_by_a_fifo_does_not_hang_the_caller(box):
    """The program owns its working directory, which lives in /tmp: it removed it and made a FIFO
    of the same name, then exited. Cleaning up, ``shutil.rmtree`` opened that path to read it, which
    for a FIFO blocks until a writer comes: the caller hung for ever after the run ended."""
    code = "import os\ncwd = os.getcwd()\nos.chdir('/')\ntry:\n    os.rmdir(cwd)\n    os.mkfifo(cwd)\n" \
           "    print('swapped')\nexcept OSError as exc:\n    print('refused', exc.errno)\n"
    try:
        done, out = _in_thread(lambda: box.python(code, limits=Limits(timeout=4)), wait=10)
    finally:
        _unblock_fifos()
    assert done, "the caller hung removing a FIFO planted where its working directory was"
    [res] = out
    assert not isinstance(res, BaseException), res
    assert res.returncode == 0, res


def test_a_workdir_swapped_for_a_symlink_does_not_list_a_host_directory_in_the_result(box, tmp_path):
    """The program renamed its working directory away and left a symlink to a directory it may not
    read in its place: the result's ``files`` (returned to the agent) was the caller's (root's)
    listing of that directory through the link, and the link was left in /tmp after the run."""
    secret = tmp_path / "private"
    secret.mkdir(mode=0o700)
    (secret / "id_rsa_of_the_host").write_text("k")
    code = f"""
import os
cwd = os.getcwd()
print(cwd, flush=True)
try:
    os.rename(cwd, cwd + '-stash')
    os.symlink({str(secret)!r}, cwd)
except OSError as exc:
    print('refused', exc.errno)
try:
    os.listdir({str(secret)!r})
    print('READABLE')
except OSError:
    pass
"""
    res = box.python(code)
    workdir = _first_line_dir(res)
    try:
        assert res.ok and "READABLE" not in res.stdout, res
        assert "id_rsa_of_the_host" not in res.files, res.files
        assert not workdir.is_symlink(), "the planted link outlived the run"
    finally:
        with contextlib.suppress(OSError):
            if workdir.is_symlink():
                workdir.unlink()
        shutil.rmtree(f"{workdir}-stash", ignore_errors=True)


# ---------------------------------------------------------------- deep and long paths
def test_a_directory_tree_deeper_than_the_recursion_limit_does_not_crash_the_caller_or_stay_behind(box):
    """Listing the run's files (``Path.rglob``) and removing its working directory
    (``shutil.rmtree``) recurse once per level: 1100 nested folders made the caller raise a bare
    RecursionError, and the working directory (with whatever it held) stayed on disk."""
    code = "import os\nprint(os.getcwd(), flush=True)\nfor _ in range(1100):\n    os.mkdir('d')\n    os.chdir('d')\n" \
           "open('deep.txt', 'w').write('x')\n"
    res = box.python(code, limits=Limits(timeout=20, cpu_seconds=20))
    assert res.ok, res
    assert not _first_line_dir(res).exists(), "the working directory stayed behind"


def test_a_path_longer_than_path_max_does_not_crash_the_caller(box):
    """Folders with 250-character names, 20 deep: their paths are longer than PATH_MAX, and listing
    the run's files (``Path.is_file`` on each) raised a bare ``OSError: File name too long``."""
    code = "import os\nprint(os.getcwd(), flush=True)\nfor _ in range(20):\n    os.mkdir('d' * 250)\n" \
           "    os.chdir('d' * 250)\nopen('f', 'w').write('x')\n"
    res = box.python(code)
    assert res.ok, res
    assert not _first_line_dir(res).exists()


def test_files_below_a_path_longer_than_path_max_count_against_the_disk_limit(box):
    """The disk watch walks the working directory by path: below PATH_MAX deep, ``scandir`` fails
    with ENAMETOOLONG and the folder was skipped, so 64 MiB written there passed a 16 MiB limit."""
    code = """
import os, time
for _ in range(20):
    os.mkdir('d' * 250)
    os.chdir('d' * 250)
chunk = b'x' * (8 << 20)
for i in range(8):
    with open(f'f{i}', 'wb') as fh:
        fh.write(chunk)
print('wrote 64 MiB', flush=True)
time.sleep(3)
"""
    res = box.python(code, limits=Limits(timeout=10, cpu_seconds=10, disk_mb=16, file_size_mb=8))
    assert res.killed_by == "disk", (res.killed_by, res.stdout, res.stderr[-300:])


# ---------------------------------------------------------------- hostile arguments
HOSTILE = {
    "env-value-with-nul": lambda b: b.python("pass", env={"A": "x\0y"}),
    "env-key-with-nul": lambda b: b.python("pass", env={"A\0B": "x"}),
    "env-key-with-equals": lambda b: b.python("pass", env={"A=B": "x"}),
    "env-key-not-a-string": lambda b: b.python("pass", env={1: "x"}),
    "argv-with-nul": lambda b: b.run(["/bin/echo", "a\0b"]),
    "argv-not-a-string": lambda b: b.run(["/bin/echo", 1]),
    "argv-a-string": lambda b: b.run("/bin/true"),
    "shell-command-over-128-kib": lambda b: b.shell("echo " + "x" * 200_000),
    "argv-over-the-kernel-limit": lambda b: b.run(["/bin/true", *(["x" * 1000] * 3000)]),
    "program-name-too-long": lambda b: b.run(["a" * 5000]),
    "program-below-a-file": lambda b: b.run(["/etc/passwd/x"]),
    "code-with-a-lone-surrogate": lambda b: b.python("print('\ud800')"),
    "stdin-with-a-lone-surrogate": lambda b: b.python("pass", stdin="\ud800"),
    "env-value-with-a-lone-surrogate": lambda b: b.python("pass", env={"A": "\ud800"}),
    "file-content-with-a-lone-surrogate": lambda b: b.python("pass", files={"a.txt": "\ud800"}),
    "file-content-not-text": lambda b: b.python("pass", files={"a.txt": 1}),
}


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_hostile_arguments_are_an_emergent_error_not_a_crash(box, attack):
    """NUL bytes or ``=`` in the environment, NUL bytes or non-strings in argv, and a command
    longer than the kernel takes (a ``shell``/``python`` tool argument over 128 KiB, chosen by an
    agent) raised bare ValueError, AttributeError, TypeError or OSError (E2BIG, ENAMETOOLONG,
    ENOTDIR) from inside the sandbox; code, stdin or a file's text with a lone surrogate (valid
    JSON from an agent) a bare UnicodeEncodeError; a plain string argv ran ``/`` with arguments
    ``b``, ``i``..."""
    try:
        res = HOSTILE[attack](box)
    except EmergentError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{attack}: a bare {type(exc).__name__}: {exc}")
    assert not res.ok and res.returncode not in (None, 0), res  # ran and failed (bubblewrap reports exec errors)
    assert attack not in ("argv-a-string",), f"{attack} ran something: {res}"


def test_a_float_output_cap_is_honoured_not_a_type_error(box):
    """``Limits(output_bytes=1e6)`` passed validation (a positive finite number) and the run then
    died slicing the output with a float: a bare TypeError after the program had run."""
    res = box.python("print('x' * 100)", limits=Limits(output_bytes=1e3, memory_mb=256.0, cpu_seconds=5.5))
    assert res.ok and res.stdout.strip() == "x" * 100, res


# ---------------------------------------------------------------- space no measure sees (not fixed)


def test_unlinked_files_held_open_count_against_the_disk_limit(box):
    """The disk limit measured the tree under the working directory: a file written, unlinked and
    kept open takes disk space no walk of the tree sees. 12 such files of 16 MiB (the file-size
    limit) passed a 32 MiB disk limit; with 256 descriptors and 64 processes a run held hundreds of
    GiB of the host's disk until it ended. Now the files the run holds open count too."""
    code = """
import os, time
fds = []
for i in range(12):
    fd = os.open(f'f{i}', os.O_CREAT | os.O_WRONLY)
    os.write(fd, b'x' * (16 << 20))
    os.unlink(f'f{i}')
    fds.append(fd)
    time.sleep(0.1)
print('hidden MiB', 16 * len(fds), flush=True)
time.sleep(2)
"""
    res = box.python(code, limits=Limits(timeout=10, cpu_seconds=10, file_size_mb=16, disk_mb=32))
    assert res.killed_by == "disk", (res.killed_by, res.stdout)
    assert "hidden MiB 192" not in res.stdout


def test_unlinked_files_of_a_child_that_left_its_parent_count_too(box):
    """The same, held by a child that daemonised itself (setsid, double fork): found as one of the
    run's processes, not only our own child's descendants of the moment."""
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fds = []
        for i in range(8):
            fd = os.open(f'g{i}', os.O_CREAT | os.O_WRONLY)
            os.write(fd, b'y' * (8 << 20))
            os.unlink(f'g{i}')
            fds.append(fd)
        time.sleep(5)
    os._exit(0)
time.sleep(4)
print('parent done', flush=True)
"""
    res = box.python(code, limits=Limits(timeout=10, cpu_seconds=10, file_size_mb=16, disk_mb=32))
    assert res.killed_by == "disk", (res.killed_by, res.stdout)


def test_ram_files_no_limit_counts_cannot_be_made(box):
    """``memfd_create`` gave an anonymous RAM file no address-space limit counts: 12 of 16 MiB took
    192 MiB of RAM under a 64 MiB memory limit (with 256 descriptors and 64 processes, more than the
    machine has). SysV segments are the same kind of RAM. Both calls are refused (ENOSYS, as an old
    kernel would answer), and a program that uses neither runs as before."""
    code = """
import ctypes, errno, os
try:
    os.memfd_create('m')
    print('memfd made')
except OSError as exc:
    print('memfd refused', exc.errno == errno.ENOSYS)
libc = ctypes.CDLL(None, use_errno=True)
seg = libc.shmget(0, 16 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
print('shmget refused', seg == -1 and ctypes.get_errno() == errno.ENOSYS)
print(sum(range(10)))
"""
    res = box.python(code, limits=Limits(timeout=10, cpu_seconds=10, memory_mb=64, file_size_mb=16))
    assert res.ok, (res.stdout, res.stderr)
    assert "memfd refused True" in res.stdout and "shmget refused True" in res.stdout and "45" in res.stdout


# ---------------------------------------------------------------- host sockets and IPC without network
@pytest.fixture
def host_unix_server():
    """A server on a Unix socket bound to a path every user may reach (``srwxrwxrwx`` in a world-
    traversable directory), like PostgreSQL's ``/var/run/postgresql/.s.PGSQL.5432``; it answers
    ``hello`` to whoever connects."""
    import socket
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="emergent-sock-"))
    where.chmod(0o755)
    path = where / ".s.DB.5432"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    path.chmod(0o777)
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"hello")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path
    stop.set()
    t.join(2)
    srv.close()
    shutil.rmtree(where, ignore_errors=True)


_CONNECT = """
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(sys.argv[1])
    print('connected', s.recv(5).decode())
except OSError as exc:
    print('refused', type(exc).__name__)
"""


def test_a_run_without_network_cannot_reach_a_host_database_through_its_unix_socket(box, host_unix_server):
    """A network namespace cuts IP and abstract Unix sockets, not a Unix socket bound to a path: a run
    "without network" connected to a world-writable socket on the host, as PostgreSQL's and MariaDB's
    are (both trusting local connections on these machines: a database superuser for any sandboxed
    program). Without network, no run reaches it, whichever set-up."""
    res = box.run([python_executable(), "-c", _CONNECT, str(host_unix_server)])
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert res.stdout.startswith("refused"), f"the run reached the host's socket: {res.stdout!r}"


def test_the_host_socket_is_reachable_when_the_run_is_given_network(box, host_unix_server):
    """The control for the attack above: with network allowed, the same program connects wherever the
    host's directories are in view (every set-up but bubblewrap's, which mounts no host path but the
    system directories and the working directory), so the refusal above is the sandbox's doing, not
    the socket's permissions."""
    res = box.run([python_executable(), "-c", _CONNECT, str(host_unix_server)],
                  limits=Limits(timeout=10, network=True))
    expected = "refused FileNotFoundError" if box.backend == "bwrap" else "connected hello"
    assert res.stdout.startswith(expected), (res.stdout, res.stderr)


def test_a_run_without_network_can_still_use_socketpair_and_asyncio(box):
    """What stays allowed: ``socketpair`` (asyncio's event loop wakes itself through one)."""
    code = "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 41 + 1\nprint(asyncio.run(f()))"
    res = box.python(code)
    assert res.ok and res.stdout.strip() == "42", (res.stdout, res.stderr)


def test_a_run_without_network_does_not_see_the_hosts_sysv_message_queues(box):
    """Host SysV IPC objects that others may use (mode 0666) were reachable from a run without
    network: a new IPC namespace comes with the network namespace (bubblewrap makes its own)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    key = 0x5E3D0000 | (os.getpid() & 0xFFFF)
    qid = libc.msgget(key, 0o1666)  # IPC_CREAT | 0666
    assert qid >= 0, os.strerror(ctypes.get_errno())
    try:
        code = (f"import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\nq = libc.msgget({key}, 0)\n"
                "print('found' if q >= 0 else 'absent', errno.errorcode.get(ctypes.get_errno()))")
        res = box.python(code)
        assert res.ok, (res.stdout, res.stderr)
        assert res.stdout.startswith("absent"), f"the run found the host's queue: {res.stdout!r}"
    finally:
        libc.msgctl(qid, 0, None)  # IPC_RMID


def test_io_uring_cannot_be_used_to_do_what_the_filter_refuses(box):
    """io_uring makes sockets, connects and opens files (IORING_OP_SOCKET, OP_CONNECT, OP_OPENAT) without
    the system calls a seccomp filter sees: with it a run "without network" could make the Unix socket
    the filter refuses and reach the host's database. Setting up a ring is refused (ENOSYS, as a kernel
    without io_uring answers; the three calls are 425-427 on every architecture)."""
    code = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 8, params)  # io_uring_setup(8 entries)
print('ring made' if fd >= 0 else 'refused', errno.errorcode.get(ctypes.get_errno()))
"""
    res = box.python(code)
    assert res.ok, (res.stdout, res.stderr)
    assert res.stdout.split() == ["refused", "ENOSYS"], res.stdout


def test_a_unix_socket_family_with_its_upper_register_bits_set_is_refused_too(box):
    """The kernel reads socket()'s family as a 32-bit int, a filter compares the 64-bit register: a rule
    "family == AF_UNIX" let 0x1_00000001 through, and the kernel made a Unix socket of it (then the
    host's database socket was reachable again). Without network, every spelling is refused."""
    code = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for family in (1, 0x100000001, 0xFFFFFFFF00000001):
    fd = libc.syscall(ctypes.c_long(41), ctypes.c_long(family), ctypes.c_long(1), ctypes.c_long(0))  # x86-64
    print(hex(family), 'made' if fd >= 0 else errno.errorcode.get(ctypes.get_errno()))
"""
    import platform

    if platform.machine() != "x86_64":  # the socket call's number differs elsewhere
        code = code.replace("41", "198")  # aarch64
    res = box.python(code)
    assert res.ok, (res.stdout, res.stderr)
    # bubblewrap's runs may make Unix sockets: no host path where one could connect is mounted there
    expected = "made" if box.backend == "bwrap" else "EACCES"
    assert [line.split()[1] for line in res.stdout.splitlines()] == [expected] * 3, res.stdout


def _vsock_here() -> bool:
    import socket

    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
        return True
    except (OSError, AttributeError):
        return False


_VSOCK = """
import socket, errno
try:
    s = socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
    s.settimeout(2)
    try:
        s.connect((2, 1))  # the hypervisor (CID 2), a port nobody listens on
        print('made connected')
    except OSError as exc:
        print('made', errno.errorcode.get(exc.errno))
except OSError as exc:
    print('refused', errno.errorcode.get(exc.errno))
"""


def test_a_run_without_network_cannot_reach_the_hypervisor_over_vsock(box):
    """AF_VSOCK belongs to no network namespace: on a virtual machine (these machines are Firecracker
    VMs) a run "without network", bubblewrap's included, made a vsock socket and reached the host
    (CID 2 answered with a reset). Without network only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK
    sockets can be made."""
    res = box.python(_VSOCK)
    assert res.ok, (res.stdout, res.stderr)
    assert res.stdout.split() == ["refused", "EAFNOSUPPORT"], res.stdout


def test_with_network_a_vsock_socket_is_made_where_the_machine_has_vsock(box):
    """The control: the refusal above is the filter's, not the kernel's."""
    res = box.python(_VSOCK, limits=Limits(timeout=10, network=True))
    assert res.ok, (res.stdout, res.stderr)
    assert res.stdout.startswith("made" if _vsock_here() else "refused"), res.stdout


# ---------------------------------------------------------------- the kernel's larger surfaces
_NAMESPACES_AND_KERNEL = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def outcome(ret):
    return 'made' if ret >= 0 else errno.errorcode.get(ctypes.get_errno(), '?')

for name, flag in (('user', 0x10000000), ('mount', 0x20000), ('net', 0x40000000), ('pid', 0x20000000)):
    print('unshare', name, outcome(libc.unshare(flag)))
os.makedirs('m', exist_ok=True)
print('mount', outcome(libc.mount(b'none', b'm', b'tmpfs', 0, None)))
print('userfaultfd', outcome(libc.syscall(323, 0)))  # x86-64
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (ctypes.c_uint32 * 2)(1, 128), 8)  # PERF_TYPE_SOFTWARE, the struct's size
print('perf_event_open', outcome(libc.syscall(298, attr, 0, -1, -1, 0)))
print('add_key', outcome(libc.syscall(248, b'user', b'k', b'v', 1, -2)))  # KEY_SPEC_PROCESS_KEYRING
print('keyctl', outcome(libc.syscall(250, 0, -2, 0)))  # KEYCTL_GET_KEYRING_ID
"""


def test_a_run_can_make_no_namespace_mount_userfaultfd_perf_event_or_key(box):
    """A nested user namespace makes a run root of its own namespace (then mounts, more namespaces,
    and the kernel code that only root reached before); userfaultfd, perf_event_open and the key
    calls are large kernel surfaces a program here never needs. Docker's default profile refuses
    them all; so does the sandbox now, at every level."""
    res = box.python(_NAMESPACES_AND_KERNEL, limits=Limits(timeout=10))
    assert res.ok, (res.stdout, res.stderr)
    made = [line for line in res.stdout.splitlines() if line.endswith(" made")]
    assert not made, res.stdout


def test_threads_and_child_processes_still_start_under_the_filter(box):
    """The control: refusing ``clone3`` (its flags are in memory a filter cannot read) makes the C
    library fall back to ``clone``, whose flags the filter reads: threads and programs still start."""
    code = """
import subprocess, sys, threading
out = []
t = threading.Thread(target=lambda: out.append(6 * 7)); t.start(); t.join()
print(out[0], subprocess.run([sys.executable, '-c', 'print(1 + 1)'], capture_output=True, text=True).stdout.strip())
"""
    res = box.python(code, limits=Limits(timeout=20, processes=64))
    assert res.ok, (res.stdout, res.stderr)
    assert res.stdout.split() == ["42", "2"], res.stdout


def test_a_run_cannot_fill_the_hosts_dev_shm_past_its_memory_limit_or_leave_anything_there(box):
    """/dev/shm is RAM that no process limit counts, and what is written there outlives the run: a run
    of the ``unshare`` backend wrote 192 MiB there under a 64 MiB memory limit and left it on the host.
    Every run that gets namespaces now has a /dev/shm of its own, as big as its memory limit at most."""
    tag = f"emergent-shm-attack-{os.getpid()}"
    code = f"""
n = 0
try:
    with open('/dev/shm/{tag}', 'wb') as f:
        for _ in range(192):
            f.write(b'x' * (1 << 20)); n += 1
except OSError as exc:
    print('stopped', exc.errno)
print('wrote', n)
"""
    try:
        res = box.python(code, limits=Limits(timeout=20, memory_mb=64, file_size_mb=256))
        assert res.ok, (res.stdout, res.stderr)
        assert int(res.stdout.split()[-1]) <= 64, res.stdout
        assert not Path("/dev/shm", tag).exists(), "the run's file is on the host's /dev/shm"
    finally:
        with contextlib.suppress(OSError):
            Path("/dev/shm", tag).unlink()
