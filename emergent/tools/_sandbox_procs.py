"""The process machinery of :mod:`emergent.tools.sandbox`: the libc calls, the namespaces a run
enters, the supervisor between us and the program, and finding and killing a run's processes (by
parentage in /proc, by process group, by cgroup), never by name. The guarantees are described in
the sandbox's module docstring."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import os
import signal
import stat
import time
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any, NoReturn

from emergent.errors import ConfigError

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2
#: system calls a run may not make. The first three hand out RAM that no limit of a process counts
#: (a ``memfd_create`` file or a SysV segment is charged to no address space until mapped, and
#: outlives every mapping), so 16 MiB at a time they took any amount under a 64 MiB memory limit.
#: io_uring runs system calls' work (IORING_OP_SOCKET, OP_CONNECT, OP_OPENAT...) without making the
#: system calls, so no filter sees them: it would walk past the Unix-socket rule below (as Docker's
#: and Chrome's filters refuse it too). ENOSYS: programs fall back to ordinary calls.
DENIED_SYSCALLS = ("memfd_create", "memfd_secret", "shmget", "io_uring_setup", "io_uring_enter",
                   "io_uring_register",
                   # large kernel surfaces no program here needs (Docker's default profile refuses them
                   # too): the key calls, userfaultfd, perf events, BPF, kernel modules and kexec, and
                   # opening a file by its handle (a known container escape)
                   "add_key", "request_key", "keyctl", "userfaultfd", "perf_event_open", "bpf", "init_module",
                   "finit_module", "delete_module", "kexec_load", "kexec_file_load", "open_by_handle_at")
#: refused (EPERM) where the filter is installed after our own namespace set-up (every backend but
#: bubblewrap, whose own set-up makes these calls after our filter is in place; its runs get
#: ``--disable-userns`` instead, and without a user namespace of their own they hold no capability
#: these calls need). A nested user namespace made a run root of its own namespace: it could mount a
#: tmpfs that no memory limit counts, and reach the kernel code only root reached before. ``clone3``
#: is refused with ENOSYS (its flags are in memory a filter cannot read): the C library then uses
#: ``clone``, whose namespace flags are refused here.
DENIED_AFTER_SETUP = ("unshare", "setns", "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
                      "fsmount", "fsconfig", "fspick", "mount_setattr", "clone(CLONE_NEW*)", "clone3")
#: the namespace flags of ``clone`` (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET)
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
#: refused too where the run's network is cut by a network namespace of our own (the ``network``
#: level): a namespace cuts IP and abstract Unix sockets, not a Unix socket bound to a *path*, which
#: any process that can see the path reaches. PostgreSQL's and MariaDB's sockets are world-writable
#: (``srwxrwxrwx``) and often trust whoever connects, so a run "without network" could log in as a
#: database superuser. ``socketpair`` (asyncio's wake-up pipe) stays allowed; bubblewrap's runs see
#: no host socket at all (only the system directories and the working directory are mounted).
DENIED_WITHOUT_NETWORK = ("socket(AF_UNIX)",)
#: the socket families a run without network may make; every other is refused (EAFNOSUPPORT) at
#: every level, bubblewrap's included: AF_VSOCK in particular is no network namespace's, and on a
#: virtual machine it reaches the hypervisor's services (a run connected to the host's CID 2)
FAMILIES_WITHOUT_NETWORK = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
_STOP = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}  # asks a supervisor to end the run
_cgroup_ids = itertools.count()


# ---------------------------------------------------------------- kernel interfaces
@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _stat_ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _ppid_map() -> dict[int, list[int]]:
    """parent pid -> child pids, for every process /proc shows."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (ppid := _stat_ppid(int(entry))) is not None:
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _kill_exact(pid: int, parents: Container[int]) -> None:
    """SIGKILL ``pid`` only while it is a child of one of ``parents``. The process is pinned by a
    pidfd before its parent is checked, so a recycled pid number never hits a stranger."""
    try:
        fd = os.pidfd_open(pid)
    except AttributeError:  # no pidfd on this kernel or Python: check, then kill (a tiny window)
        fd = -1
    except OSError:
        return
    try:
        if _stat_ppid(pid) in parents:
            if fd < 0:
                os.kill(pid, signal.SIGKILL)
            else:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        if fd >= 0:
            os.close(fd)


def _kill_descendants(root: int, depth: int | None = None) -> int:
    """SIGKILL every process whose chain of parents leads to ``root`` (down to ``depth``
    generations); session and process group do not matter. Returns how many were found."""
    kids, tree, level, found = _ppid_map(), {root}, [root], 0
    while level and (depth is None or depth > 0):
        level = [pid for parent in level for pid in kids.get(parent, ())]
        tree.update(level)
        for pid in level:
            _kill_exact(pid, tree)
        found += len(level)
        depth = None if depth is None else depth - 1
    return found


# ---------------------------------------------------------------- the supervisor (a forked child)
def _relay(status: int) -> NoReturn:
    """End the supervisor the way the program ended (its exit code, or its signal)."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        os._exit(code)
    sig = -code
    with contextlib.suppress(Exception):
        while signal.sigtimedwait(_STOP | {signal.SIGCHLD}, 0) is not None:  # drop pending stop requests
            pass
        if sig != signal.SIGKILL:  # its disposition cannot be changed (and is the default anyway)
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def _reap(child: int, status: int | None) -> tuple[int | None, bool]:
    """Reap every exited child without blocking: (the program's status if seen, any child left)."""
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status, False
        if pid == 0:
            return status, True
        if pid == child:
            status = st


def _sweep(child: int, status: int | None, patience: float = 10.0) -> int | None:
    """Kill and reap every descendant of this (subreaper) process until it has no child left.
    Orphans are re-parented to us, so no child left means nothing of the run is left."""
    me, end = os.getpid(), time.monotonic() + patience
    if status is None:  # not reaped yet, so its group id cannot be anyone else's
        with contextlib.suppress(OSError):
            os.killpg(child, signal.SIGKILL)
    while True:
        status, left = _reap(child, status)
        if not left or time.monotonic() > end:
            return status
        _kill_descendants(me)
        time.sleep(0.001)


def _supervise(child: int, kill: str, parent: int) -> NoReturn:
    """The supervisor between us and the program: waits until the program exits or it is asked to
    stop (SIGTERM, or our death via PDEATHSIG), then makes sure nothing the program started is
    left, reaps it and exits the way the program did. Runs in the forked child; never returns."""
    try:
        os.closerange(0, _max_fd())  # our pipes, the exec-error pipe: the parent must see them close
        _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0), "prctl(PDEATHSIG)")
        status, stop = None, os.getppid() != parent
        while status is None and not stop:
            info = signal.sigtimedwait(_STOP | {signal.SIGCHLD}, 1.0)  # blocked since before the fork
            stop = info is not None and info.si_signo in _STOP
            status, left = _reap(child, status)
            stop = stop or not left
        if kill == "pid-namespace":  # the program is PID 1: its death ends the namespace
            if status is None:
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)
                status = os.waitpid(child, 0)[1]
        else:
            status = _sweep(child, status)
        _relay(status if status is not None else signal.SIGKILL)
    finally:
        os._exit(255)


@functools.lru_cache(maxsize=1)
def _max_fd() -> int:
    try:
        return max(int(os.sysconf("SC_OPEN_MAX")), 1024)
    except (OSError, ValueError):
        return 65536


# ---------------------------------------------------------------- namespaces
def _enter_namespaces(flags: int, uid: int, gid: int, userns: bool, shm_bytes: int | None = None) -> None:
    """Enter new namespaces (``flags``; a user namespace first without root); with ``shm_bytes``,
    a /dev/shm of the run's own in the new mount namespace (:func:`_private_shm`)."""
    if userns:
        flags |= CLONE_NEWUSER
    _check(_libc().unshare(flags), "unshare")
    if userns:  # map our own ids (an unprivileged process may map exactly its own)
        with contextlib.suppress(FileNotFoundError):
            _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    if shm_bytes is not None:
        _private_shm(shm_bytes)


@contextlib.contextmanager
def _pid_namespace_for_children() -> Iterator[None]:
    """Make the next child this thread forks PID 1 of a new pid namespace, then put this thread
    back. Namespaces are per thread and ``unshare(CLONE_NEWPID)`` moves only the thread's future
    children (not itself, nor other threads), so the program can be our direct child without a
    supervisor in between. Needs CAP_SYS_ADMIN (root); an unprivileged caller would need a user
    namespace, which a multi-threaded process cannot enter."""
    libc = _libc()
    active = os.open("/proc/thread-self/ns/pid", os.O_RDONLY)
    try:
        _check(libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        try:
            yield
        finally:  # always back: children of this thread must not land in a namespace whose init died
            _check(libc.setns(active, CLONE_NEWPID), "setns(back to our pid namespace)")
    finally:
        os.close(active)


def _private_shm(size_bytes: int) -> None:
    """A tmpfs of the run's own on /dev/shm, ``size_bytes`` at most (its memory limit), in the mount
    namespace the run has just entered. The host's /dev/shm is RAM that no process limit counts and
    that outlives the run: a run of the ``unshare`` backend wrote 192 MiB there under a 64 MiB
    memory limit, and left it behind. Bubblewrap's runs get the same (``--size`` + ``--tmpfs``)."""
    libc = _libc()
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={max(4096, size_bytes)},mode=1777".encode()), "mount /dev/shm")


def _mount_proc() -> None:
    libc = _libc()
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")


# ---------------------------------------------------------------- the system-call filter
class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


@functools.cache
def _filter_program(unix_sockets: bool = True, network: bool = True,
                    after_setup: bool = False) -> tuple[_SockFprog, Any] | None:
    """The BPF program refusing :data:`DENIED_SYSCALLS` with ENOSYS (what an older kernel answers,
    so programs take their fallback); without ``network``, sockets of families outside
    :data:`FAMILIES_WITHOUT_NETWORK` with EAFNOSUPPORT; with ``unix_sockets=False``,
    ``socket(AF_UNIX, ...)`` with EACCES (:data:`DENIED_WITHOUT_NETWORK`); with ``after_setup``
    (installed after our own namespace set-up, right before the program), namespaces and mounts
    (:data:`DENIED_AFTER_SETUP`). Compiled once by
    libseccomp (through ``pyseccomp``: the system-call numbers, argument checks and architecture
    checks are its job, not ours); None where libseccomp is missing. Built in the parent: the child
    between fork and exec only hands it to the kernel (no allocation there, where another thread may
    have held malloc's lock at the fork). Families are compared on their low 32 bits: the kernel
    reads an int, and an equality on the whole register let ``0x1_00000001`` through as AF_UNIX."""
    import errno
    import socket
    import tempfile

    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError):
        return None
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        with contextlib.suppress(ValueError, RuntimeError, OSError):  # not a call of this architecture
            flt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), name)
    if after_setup:
        for name in DENIED_AFTER_SETUP:
            if "(" not in name:
                with contextlib.suppress(ValueError, RuntimeError, OSError):  # not a call of this kernel's headers
                    flt.add_rule(pyseccomp.ERRNO(errno.ENOSYS if name == "clone3" else errno.EPERM), name)
        for flag in CLONE_NEW_FLAGS:
            flt.add_rule(pyseccomp.ERRNO(errno.EPERM), "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    if not unix_sockets:
        flt.add_rule(pyseccomp.ERRNO(errno.EACCES), "socket",
                     pyseccomp.Arg(0, pyseccomp.MASKED_EQ, 0xFFFFFFFF, socket.AF_UNIX))
    if not network:  # every family the kernel knows (AF_MAX is 46 in Linux 6.x) but those allowed
        for family in range(64):
            if family not in FAMILIES_WITHOUT_NETWORK:
                flt.add_rule(pyseccomp.ERRNO(errno.EAFNOSUPPORT), "socket",
                             pyseccomp.Arg(0, pyseccomp.MASKED_EQ, 0xFFFFFFFF, family))
    with tempfile.TemporaryFile() as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        raw = fh.read()
    n = len(raw) // ctypes.sizeof(_SockFilter)
    insns = (_SockFilter * n).from_buffer_copy(raw[: n * ctypes.sizeof(_SockFilter)])
    return _SockFprog(n, ctypes.cast(insns, ctypes.POINTER(_SockFilter))), insns  # insns: kept alive


def _install_filter(libc: Any, prog: tuple[_SockFprog, Any]) -> None:
    """In the child, last before exec: without root the kernel takes a filter only from a process
    that can gain no privileges (``no_new_privs``, kept across exec: setuid programs run as their
    caller, which a sandboxed run wants anyway)."""
    if os.geteuid() != 0:
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog[0]), 0, 0), "prctl(SECCOMP)")


# ---------------------------------------------------------------- a run's processes and cgroup
def _run_pids(root: int, cgroup: str | None) -> set[int]:
    """The processes of a run: ``root`` (our child), everything below it, and its cgroup's members
    (orphans re-parented to init stay there)."""
    kids, out, level = _ppid_map(), {root}, [root]
    while level:
        level = [pid for parent in level for pid in kids.get(parent, ()) if pid not in out]
        out.update(level)
    if cgroup:
        with contextlib.suppress(OSError, ValueError):
            out.update(int(x) for x in Path(cgroup, "cgroup.procs").read_text().split())
    return out


def _held_deleted_bytes(pids: set[int]) -> int:
    """Disk taken by files ``pids`` hold open after unlinking them: no walk of a tree sees them, and
    they hold their blocks until the run ends. A process we may not look into counts nothing."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")  # follows to the open file, unlinked or not
            except OSError:
                continue
            if st.st_nlink == 0 and stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total

def _group(pgid: int) -> list[int]:
    """The processes (zombies included) that belong to process group ``pgid``."""
    out: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def _make_cgroup(base: str) -> str:
    path = os.path.join(base, f"emergent-sbx-{os.getpid()}-{next(_cgroup_ids)}")
    try:
        os.mkdir(path)
    except OSError as exc:
        raise ConfigError(f"could not create the sandbox cgroup {path}: {exc.strerror}",
                          hint="use Sandbox(kill='auto') or make the cgroup writable") from None
    return path


def _cgroup_empty(path: str) -> bool:
    try:
        return "populated 0" in Path(path, "cgroup.events").read_text()
    except OSError:
        return True  # gone


def _kill_cgroup(path: str, patience: float = 3.0) -> None:
    """``cgroup.kill`` (unless it is empty already) and wait until the cgroup is empty."""
    if _cgroup_empty(path):
        return
    with contextlib.suppress(OSError):
        _write(os.path.join(path, "cgroup.kill"), "1")
    end = time.monotonic() + patience
    while not _cgroup_empty(path) and time.monotonic() < end:
        time.sleep(0.002)


def _remove_cgroup(path: str) -> None:
    _kill_cgroup(path)
    end = time.monotonic() + 2
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > end:
                return
            time.sleep(0.01)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(pid: int) -> bool:
    """Has our child ``pid`` exited? It is not reaped (its pid stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _await_exit(pid: int, timeout: float) -> bool:
    end, pause = time.monotonic() + timeout, 0.0005
    while not _exited(pid):
        if time.monotonic() > end:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    return True
