"""Run untrusted code and commands in a separate, limited process.

Every run gets (where the kernel and our privileges allow it; :func:`isolation` says what this
machine gives, and each :class:`SandboxResult` says what that run got):

- resource limits: CPU seconds, address space, file size, open files, processes (``setrlimit``);
- a wall-clock timeout, an output cap (stdout + stderr) and a disk limit on the working directory
  (all its files together, measured while it runs) that end the run;
- a scrubbed environment: only PATH, HOME, TMPDIR, LANG (no secrets, no ``EMERGENT_*``) plus
  what the caller passes explicitly (``EMERGENT_*`` keys are dropped even then);
- a fresh temporary working directory, the only place meant to be written;
- when started as root: the program drops to an unprivileged user id of its own, picked for this
  run from a range no account uses (:data:`RUN_UIDS`, like systemd's ``DynamicUser``), so it cannot
  write outside its working directory (and world-writable places such as /tmp), read other users'
  files, read the parent's ``/proc/<pid>/environ``, signal the sandbox's own supervisor, or signal,
  trace or starve *another run* (two runs sharing ``nobody`` could ``kill -1`` each other, and the
  process limit, which counts per user, was shared: one run's fork bomb stopped every other run's
  programs from starting); the process limit then applies too (root ignores ``RLIMIT_NPROC``).

Isolation levels (``level``; weakest first). A policy may require one (``Sandbox.requiring``;
agents get ``network`` or better by default):

``none``
    nothing; only meaningful as a requirement ("a plain subprocess is fine").
``process``
    the limits above. Does **not** stop: network access, reading anything the user may read,
    writing anything the user may write (without the root drop), seeing host processes.
``network``
    plus a new, empty network namespace (``unshare(CLONE_NEWNET)``; root, or an unprivileged user
    namespace): no interface but a loopback that is down, so every connection fails, even to a
    server on 127.0.0.1; a new IPC namespace (no host SysV queue, semaphore or POSIX message
    queue); and ``socket(AF_UNIX)`` refused (EACCES), because a Unix socket bound to a path is
    reachable from any network namespace (PostgreSQL's and MariaDB's are world-writable and may
    trust whoever connects); ``socketpair`` still works. Does **not** stop: reading world-readable
    host files, writing world-writable directories, (without root) writing what the user may write.
``namespace``
    bubblewrap: new user, pid, network, ipc, uts and cgroup namespaces, a read-only view of /usr,
    /bin, /lib and /etc, a private /proc, a private /tmp and /dev/shm (in RAM, so each no larger
    than the memory limit; the rest of bubblewrap's own root and /dev is read-only), and the
    working directory as the only host path it can write or even see. Does **not** stop: reading
    the read-only system directories.

Kill guarantee (``kill``): what makes sure that every process a run started is gone when the run
ends, i.e. when its main process exits, or the timeout or the output cap stops it. The run's
processes are found by what ties them to the run (its pid namespace, parentage below its own
supervisor, its cgroup, its process group), never by name or by our own parentage, so nothing
outside the run is touched (other children of this process, e.g. a daemonised server a test
fixture started, are left alone); a process signalled on its own is pinned with a pidfd first.

``pid-namespace``
    the run lives in its own PID namespace: bubblewrap's, or one made with
    ``unshare(CLONE_NEWPID)`` with the program as its PID 1 and (where a mount namespace works) a
    private /proc that shows only the run's processes (so no other process's environ or command
    line either). As root our own thread makes it for its next child, so the program is our
    direct child (no extra process, ``pid_namespace_via: parent``); without root it takes a user
    namespace, which a multi-threaded process cannot enter, so a forked supervisor makes it and
    sits between us and the program (``supervisor``: it waits, stops the program when asked, and
    dies with us). The program dies with us too (``PR_SET_PDEATHSIG``). When PID 1 exits or is
    killed the kernel kills every process in the namespace: ``setsid``, double forks, daemons and
    fork bombs do not escape. Being PID 1, the program ignores signals it sends itself without a
    handler, and the soft CPU limit (SIGXCPU); the hard limit one second later kills it.
``subreaper``
    a supervisor process forked for the run is made a child subreaper
    (``PR_SET_CHILD_SUBREAPER``): every orphan of the run is re-parented to it, not to init. When
    the program ends (or the sandbox asks it to stop) it SIGKILLs all its descendants, found by
    parentage in /proc, until it has no child left. Catches ``setsid``, double forks and daemons.
    Does **not** stop (non-root only, where the program runs as the same user as the supervisor)
    a hostile program that kills its supervisor first.
``cgroup``
    the program starts in a fresh cgroup v2 made below ours (when we may write there and the
    kernel has ``cgroup.kill``); ``cgroup.kill`` ends every member at once, forks included. Does
    **not** stop (non-root only) a program that moves itself into another cgroup it may write.
``process-group``
    SIGKILL to the run's process group, the last resort: a process that calls ``setsid`` or
    ``setpgid`` and outlives the main process survives the run.

The preference is that order (bubblewrap always gives ``pid-namespace``); ``Sandbox(kill=...)``
forces one for the non-bubblewrap backend and fails with :class:`ConfigError` when it is not
available here.

At every level a system-call filter (seccomp, compiled by libseccomp) refuses the calls that hand
out RAM no process limit counts (``memfd_create``, ``memfd_secret``, SysV ``shmget``: ENOSYS) and
io_uring (which does system calls' work unseen by any filter); a run without network may make
sockets of the families AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK only (AF_VSOCK, which no network
namespace cuts, reached the hypervisor of a virtual machine); and
files the run unlinked but holds open count against the disk limit.

Not protected against at any level: kernel exploits and side channels (the filter is not a
system-call allow-list), CPU and memory pressure within the limits. Use a VM or a container runtime for hostile code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emergent.errors import ConfigError, SandboxLimitError, ValidationError
from emergent.tools import _sandbox_procs as _procs
from emergent.tools._sandbox_probe import (
    _world_executable,
    bwrap_argv,
    isolation,
    python_executable,
    scrub_env,
)

NOBODY = 65534
#: the user ids runs started as root drop to: one drawn at random for each run from 2**24 ids above
#: 2**30, far above any account's (ids need no passwd entry to be set)
RUN_UIDS = (1 << 30, (1 << 30) + (1 << 24))


def _run_uid() -> int:
    return RUN_UIDS[0] + secrets.randbelow(RUN_UIDS[1] - RUN_UIDS[0])
LEVELS = ("none", "process", "network", "namespace")
#: kill guarantees, strongest first (see the module docstring)
KILLS = ("pid-namespace", "subreaper", "cgroup", "process-group")
EXIT_CODES = {"timeout": 124, "cpu": 152, "memory": 153, "file_size": 154, "output": 155, "processes": 156,
              "disk": 157}
_ORDER = {"none": 0, "process": 1, "network": 2, "namespace": 3}
_SUPERVISED = ("pid-namespace", "subreaper")  # a supervisor process sits between us and the program
_DRAIN_S = 0.5  # after the main process ended: how long to read what is still in the pipes
_DISK_EVERY_S = 0.2  # how often a run's working directory is measured
_DISK_ENTRIES = 100_000  # more files and folders than this in a working directory: the disk limit too


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 512
    file_size_mb: int = 64
    open_files: int = 256
    processes: int = 64
    output_bytes: int = 1_000_000
    #: what the working directory may hold in all (the file-size limit is per file: many files
    #: filled the host's disk); checked while it runs, every :data:`_DISK_EVERY_S`
    disk_mb: int = 1024
    network: bool = False

    def __post_init__(self) -> None:
        for name in ("timeout", "cpu_seconds", "memory_mb", "file_size_mb", "open_files", "processes",
                     "output_bytes", "disk_mb"):
            value = getattr(self, name)
            # NaN compares false with everything: a NaN timeout was never reached (no wall-clock limit)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
                raise ValidationError(f"sandbox limit {name} must be a positive finite number, got {value!r}")


@dataclass(slots=True)
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    killed_by: str | None
    isolation: str
    truncated: bool = False
    files: list[str] = field(default_factory=list)
    #: how the run's processes were made sure to end (one of :data:`KILLS`)
    kill: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed_by is None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def check(self) -> SandboxResult:
        """Raise :class:`SandboxLimitError` when a limit killed the process."""
        if self.killed_by is not None:
            raise SandboxLimitError(f"the sandboxed process was stopped by its {self.killed_by} limit "
                                    f"after {self.duration_s:.2f} s", hint=_HINTS[self.killed_by],
                                    limit=self.killed_by, result=self)
        return self


_HINTS = {
    "timeout": "it ran past its wall-clock timeout; raise --timeout or make it finish sooner",
    "cpu": "it used up its CPU seconds; raise the CPU limit if the work is legitimate",
    "memory": "it ran out of its address-space limit; raise --memory",
    "file_size": "it wrote a file larger than the file-size limit",
    "output": "it printed more than the output cap; write large results to a file instead",
    "disk": "its working directory grew past the disk limit (or held too many files); raise disk_mb if the "
            "work needs it",
    "processes": "it tried to start more processes than allowed (a fork bomb?)",
}


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one run is set up (resolved from :func:`isolation` and the sandbox's options)."""

    kill: str
    bwrap: bool = False
    netns: bool = False  # cut the network ourselves (bubblewrap does its own)
    userns: bool = False  # not root: enter a user namespace first (namespaces need it)
    private_proc: bool = False  # pid-namespace: mount a /proc showing only the run
    drop: bool = False  # root: the program runs as an unprivileged user id of its own (``uid``)
    uid: int = NOBODY  # that id, drawn for each run (see :data:`RUN_UIDS`)
    cgroup: str | None = None  # the run's own cgroup directory
    direct: bool = False  # pid-namespace made by our thread for its next child (root): no supervisor

    @property
    def supervised(self) -> bool:
        return self.kill in _SUPERVISED and not self.bwrap and not self.direct

    @property
    def self_cleaning(self) -> bool:
        """Nothing of the run is left once our child has exited."""
        return self.supervised or self.bwrap or self.direct


def _popen(argv: Sequence[str], plan: _Plan, preexec: Callable[[], None], **kw: Any) -> subprocess.Popen[bytes]:
    if not plan.direct:
        return subprocess.Popen(list(argv), preexec_fn=preexec, start_new_session=True, **kw)  # noqa: PLW1509
    with _procs._pid_namespace_for_children():
        return subprocess.Popen(list(argv), preexec_fn=preexec, start_new_session=True, **kw)  # noqa: PLW1509


def _preexec(limits: Limits, plan: _Plan) -> Callable[[], None]:
    """What the child does between fork and exec (runs in the child; raising there makes Popen
    raise ``SubprocessError`` in the parent)."""
    mb = 1024 * 1024
    cpu, mem, fsize = math.ceil(limits.cpu_seconds), int(limits.memory_mb * mb), int(limits.file_size_mb * mb)
    nofile, nproc = math.ceil(limits.open_files), math.ceil(limits.processes)  # setrlimit takes whole numbers
    rl = [(resource.RLIMIT_CPU, (cpu, cpu + 1)),
          (resource.RLIMIT_AS, (mem, mem)),
          (resource.RLIMIT_FSIZE, (fsize, fsize)),
          (resource.RLIMIT_NOFILE, (nofile, nofile)),
          (resource.RLIMIT_NPROC, (nproc, nproc)),
          (resource.RLIMIT_CORE, (0, 0))]
    # a network namespace of our own comes with an IPC namespace (no host SysV queue, semaphore or
    # POSIX message queue either) and a filter refusing Unix sockets (see DENIED_WITHOUT_NETWORK)
    flags = _procs.CLONE_NEWNET | _procs.CLONE_NEWIPC if plan.netns else 0
    # and a mount namespace, for a /dev/shm of its own: the host's is RAM no limit counts
    shm = bool(plan.netns and not plan.bwrap and os.path.isdir("/dev/shm"))
    flags |= _procs.CLONE_NEWNS if shm else 0
    if plan.kill == "pid-namespace" and not plan.bwrap:
        flags |= (_procs.CLONE_NEWNS if plan.private_proc else 0) | (_procs.CLONE_NEWPID if plan.supervised else 0)
    uid, gid, parent = os.getuid(), os.getgid(), os.getpid()
    libc = _procs._libc()
    _procs._max_fd()
    program = _procs._filter_program(unix_sockets=not plan.netns, network=limits.network, after_setup=not plan.bwrap)

    def pre() -> None:
        with contextlib.suppress(ValueError):  # a parent that ignores SIGCHLD would have children auto-reaped
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if plan.cgroup:  # before anything changes who we are
            _procs._write(os.path.join(plan.cgroup, "cgroup.procs"), str(os.getpid()))
        if flags:
            _procs._enter_namespaces(flags, uid, gid, plan.userns, shm_bytes=mem if shm else None)
        if plan.supervised:
            if plan.kill == "subreaper":
                _procs._check(libc.prctl(_procs.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(CHILD_SUBREAPER)")
            old = signal.pthread_sigmask(signal.SIG_BLOCK, _procs._STOP | {signal.SIGCHLD})
            supervisor = os.getpid()
            child = os.fork()
            if child:
                _procs._supervise(child, plan.kill, parent)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            if plan.kill == "subreaper":
                os.setpgid(0, 0)  # its own group: a kill(0, ...) of its own cannot reach the supervisor
        if plan.kill == "pid-namespace" and plan.private_proc and not plan.bwrap:
            _procs._mount_proc()  # we are PID 1 of the new namespace now
        for res, val in rl:
            resource.setrlimit(res, val)
        if plan.drop:
            os.setgroups([])
            os.setgid(plan.uid)
            os.setuid(plan.uid)
        if plan.supervised or plan.direct:  # after the uid change, which would clear it
            _procs._check(libc.prctl(_procs.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
            if plan.kill == "subreaper" and os.getppid() != supervisor:
                raise OSError("the sandbox supervisor died before the program started")
        if program is not None:
            _procs._install_filter(libc, program)

    return pre


def _classify(rc: int | None, stderr: str, killed: str | None) -> str | None:
    if killed:
        return killed
    if rc is None or rc == 0:
        return None
    if rc in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return "cpu"
    tail = stderr[-2000:]
    if rc in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or "File too large" in tail:
        return "file_size"
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "bad_alloc" in tail:
        return "memory"
    if "Resource temporarily unavailable" in tail:
        return "processes"
    return None


class Sandbox:
    """Runs argv lists in a limited child process; see the module docstring for the guarantees.

    ``backend``: ``auto`` (bubblewrap when usable), ``bwrap`` or ``unshare`` (no bubblewrap).
    ``kill``: ``auto`` (the strongest available) or one of :data:`KILLS` to force it (anything but
    ``pid-namespace`` means the ``unshare`` backend)."""

    def __init__(self, limits: Limits | None = None, *, root: str | Path | None = None,
                 require: str = "none", keep_workdir: bool = False, backend: str = "auto",
                 kill: str = "auto") -> None:
        if backend not in ("auto", "bwrap", "unshare"):
            raise ValidationError(f"unknown sandbox backend {backend!r}", hint="use auto, bwrap or unshare")
        if kill not in ("auto", *KILLS):
            raise ValidationError(f"unknown kill mechanism {kill!r}", hint=f"use auto or one of {', '.join(KILLS)}")
        if backend == "bwrap" and kill not in ("auto", "pid-namespace"):
            raise ValidationError(f"bubblewrap always kills through its pid namespace, not {kill!r}",
                                  hint="use the unshare backend (backend='unshare', --backend unshare) to "
                                       "force another kill mechanism")
        if require not in LEVELS:
            raise ValidationError(f"unknown isolation level {require!r}", hint=f"use one of {', '.join(LEVELS)}")
        self.backend = backend
        self.kill = kill
        self.limits = limits or Limits()
        self.root = Path(root) if root else None
        self.require = require
        self.keep_workdir = keep_workdir

    def requiring(self, level: str) -> Sandbox:
        """The same sandbox, refusing runs that get less isolation than ``level``."""
        if level == self.require:
            return self
        return Sandbox(self.limits, root=self.root, require=level, keep_workdir=self.keep_workdir,
                       backend=self.backend, kill=self.kill)

    def _plan(self, network: bool) -> _Plan:
        info = isolation()
        if info["bubblewrap"] and self.backend != "unshare" and self.kill in ("auto", "pid-namespace"):
            return _Plan("pid-namespace", bwrap=True, drop=info["drops_privileges"])
        kills = info["kill_mechanisms"]
        kill = kills[0] if self.kill == "auto" else self.kill
        if kill not in kills:
            raise ConfigError(f"the sandbox kill mechanism {kill!r} is not available on this machine "
                              f"(available: {', '.join(kills)})",
                              hint="use kill='auto'; pid-namespace needs root or user namespaces, cgroup a "
                                   "writable cgroup v2 with cgroup.kill", kill=kill)
        return _Plan(kill, netns=info["network_namespace"] and not network, userns=not info["drops_privileges"],
                     private_proc=kill == "pid-namespace" and info["private_proc"],
                     direct=kill == "pid-namespace" and info.get("pid_namespace_via") == "parent",
                     drop=info["drops_privileges"], cgroup=info["cgroup"] if kill == "cgroup" else None)

    @property
    def level(self) -> str:
        """The isolation level a run without network gets."""
        plan = self._plan(False)
        return "namespace" if plan.bwrap else "network" if plan.netns else "process"

    @property
    def kill_mechanism(self) -> str:
        """The kill guarantee a run gets (one of :data:`KILLS`)."""
        return self._plan(False).kill

    def check_level(self, require: str | None = None, network: bool = False) -> str:
        need = require or self.require
        if need not in LEVELS:
            raise ValidationError(f"unknown isolation level {need!r}", hint=f"use one of {', '.join(LEVELS)}")
        have = self.level if not network else ("namespace" if self.level == "namespace" else "process")
        if _ORDER[have] < _ORDER[need]:
            raise ConfigError(f"the sandbox needs isolation {need!r} but this machine gives {have!r}",
                              hint="run as root or enable user namespaces (for a network namespace), "
                                   "install bubblewrap (for namespace), or lower the policy's require_isolation",
                              have=have, need=need)
        return have

    def run(self, argv: Sequence[str], *, stdin: str | bytes | None = None, limits: Limits | None = None,
            env: Mapping[str, str] | None = None, files: Mapping[str, str | bytes] | None = None,
            require: str | None = None) -> SandboxResult:
        argv = _check_argv(argv)
        feed = _encode_stdin(stdin)
        lim = limits or self.limits
        level = self.check_level(require, network=lim.network)
        plan = self._plan(lim.network)
        base = self.root
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
            if plan.drop and not _world_executable(str(base)):  # the sandbox user could not reach it
                base = None
        if plan.drop:
            plan = replace(plan, uid=_run_uid())
        workdir = tempfile.mkdtemp(prefix="emergent-sbx-", dir=base)
        made = os.lstat(workdir)
        ident = (made.st_dev, made.st_ino)
        try:
            self._seed(workdir, files or {}, plan.uid if plan.drop else None)
            full = [*bwrap_argv(shutil.which("bwrap") or "bwrap", workdir, lim.network,
                                tmpfs_bytes=lim.memory_mb * 1024 * 1024), *argv] if plan.bwrap else list(argv)
            if plan.cgroup:
                plan = replace(plan, cgroup=_procs._make_cgroup(plan.cgroup))
            try:
                result = self._spawn(full, feed, lim, scrub_env(env, workdir), workdir, plan)
            finally:
                if plan.cgroup:
                    _procs._remove_cgroup(plan.cgroup)
            result.isolation, result.kill = level, plan.kill
            result.files = _list_files(workdir, ident)
            return result
        finally:
            if not self.keep_workdir:
                _remove_workdir(workdir)

    def python(self, code: str, **kw: Any) -> SandboxResult:
        """Run Python source in an isolated interpreter (``-I -S``: no site-packages, no user env)."""
        return self.run([python_executable(), "-I", "-S", "-c", code], **kw)

    def shell(self, command: str, **kw: Any) -> SandboxResult:
        return self.run(["/bin/sh", "-c", command], **kw)

    @staticmethod
    def _seed(workdir: str, files: Mapping[str, str | bytes], uid: int | None) -> None:
        root = Path(workdir).resolve()
        hint = "name each file by a relative path such as 'data/in.csv', each once, no file inside another"
        for name, content in files.items():
            if not isinstance(name, str) or "\x00" in name:
                raise ValidationError(f"sandbox file name {name!r} is not a path", hint=hint)
            target = (Path(workdir) / name).resolve()
            if not target.is_relative_to(root):
                raise ValidationError(f"sandbox file {name!r} would land outside the working directory")
            if target == root:
                raise ValidationError(f"sandbox file {name!r} names the working directory itself, not a file",
                                      hint=hint)
            try:
                if not isinstance(content, str | bytes | bytearray):  # bytes(1) would be one NUL byte
                    raise TypeError(f"not {type(content).__name__}")
                data = content.encode() if isinstance(content, str) else bytes(content)
            except (UnicodeEncodeError, TypeError) as exc:
                raise ValidationError(f"sandbox file {name!r} must be text or bytes: {exc}", hint=hint) from None
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise ValidationError(f"sandbox file {name!r} clashes with another file or folder given",
                                      hint=hint) from None
        if uid is not None:
            for p in [Path(workdir), *Path(workdir).rglob("*")]:
                os.chown(p, uid, uid)
        os.chmod(workdir, 0o700)

    def _spawn(self, argv: Sequence[str], stdin: bytes, lim: Limits, env: dict[str, str],
               workdir: str, plan: _Plan) -> SandboxResult:
        t0 = time.monotonic()
        try:
            proc = _popen(argv, plan, _preexec(lim, plan), cwd=workdir, env=env,
                          stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, close_fds=True)
        except FileNotFoundError:
            raise ValidationError(f"command not found: {argv[0]!r}", hint="give a full path or a command on PATH") \
                from None
        except PermissionError as exc:
            raise ValidationError(f"cannot execute {argv[0]!r} in the sandbox: {exc}",
                                  hint="the sandbox user must be allowed to run it") from None
        except OSError as exc:
            if exc.errno not in _EXEC_ARG_ERRORS:
                raise
            raise ValidationError(f"cannot execute {argv[0][:200]!r} in the sandbox: {exc.strerror}",
                                  hint="the command line is longer than the kernel takes (write long code to a "
                                       "file with files=...) or names no program") from None
        except subprocess.SubprocessError:
            raise ConfigError(f"could not set up the sandbox ({plan.kill}, network namespace: {plan.netns}, "
                              f"user namespace: {plan.userns})",
                              hint="the probe said this machine allows it; run `emergent sandbox info`, or "
                                   "force a weaker set-up with Sandbox(kill=..., backend='unshare') or "
                                   "Limits(network=True)") from None
        out, err, killed, truncated = self._pump(proc, lim, t0, plan, workdir, stdin)
        rc = proc.returncode
        stderr = err.decode("utf-8", "replace")
        limit = _classify(rc, stderr, killed)
        if limit is not None:
            self._settle(proc, plan)
        return SandboxResult(rc, out.decode("utf-8", "replace"), stderr, time.monotonic() - t0, limit, "",
                             truncated)

    @staticmethod
    def _settle(proc: subprocess.Popen[bytes], plan: _Plan, timeout: float = 3.0) -> None:
        """After a limit hit without a supervisor or bubblewrap: wait (briefly) until every
        process of the group is gone and reaped, so the next run does not inherit a process count
        from a fork bomb (their zombies wait for init)."""
        if plan.self_cleaning:
            return  # our child exited only once everything else was gone
        end = time.monotonic() + timeout
        while time.monotonic() < end and _procs._group(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes], plan: _Plan) -> None:
        """The main process has exited (not yet reaped, so its group id is still its own): kill
        whatever it left. With a pid namespace or a subreaper nothing is left by then."""
        if plan.cgroup:
            _procs._kill_cgroup(plan.cgroup)
        elif not plan.self_cleaning:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes], plan: _Plan) -> None:
        """A limit was hit while it runs: kill the run, and wait until our child has exited (it is
        reaped later). Killing below our child lets the supervisor or bubblewrap reap the run,
        so no orphaned zombie waits for init and counts against the process limit: the
        supervisor is asked (SIGTERM) and kills the run before it goes; under bubblewrap its
        init (our child's child) takes SIGKILL, the kernel ends the namespace and bubblewrap
        exits; a program that is our child and PID 1 takes SIGKILL. Otherwise, and when that
        does not end it in 5 s: cgroup.kill and SIGKILL to the group (one signal suffices: a
        process with a pending SIGKILL cannot fork)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if plan.supervised:
                os.kill(proc.pid, signal.SIGTERM)
            elif plan.direct:  # our child is PID 1 of the run's namespace: the kernel does the rest
                os.kill(proc.pid, signal.SIGKILL)
            elif plan.bwrap:
                _procs._kill_descendants(proc.pid, depth=1)
        if plan.self_cleaning and _procs._await_exit(proc.pid, 5.0):
            return
        if plan.cgroup:
            _procs._kill_cgroup(plan.cgroup)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _procs._await_exit(proc.pid, 5.0)

    def _pump(self, proc: subprocess.Popen[bytes], lim: Limits, t0: float,
              plan: _Plan, workdir: str | None = None, feed: bytes = b"") -> tuple[bytes, bytes, str | None, bool]:
        """Read both pipes until the main process has exited and they are closed, or the output
        cap or the deadline is hit (then the run is killed). When the main process exits first,
        what it left is killed and the pipes are read for at most ``_DRAIN_S`` more. ``feed`` is
        written to stdin as the program takes it (a blocking write of more than the pipe holds to a
        program that never reads stopped the clock: the caller hung past the timeout)."""
        bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        sel = selectors.DefaultSelector()
        for pipe in bufs:
            sel.register(pipe, selectors.EVENT_READ)  # type: ignore[arg-type]
        stdin = _Feed(proc, feed, sel)
        pidfd = _procs._pidfd(proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, data=functools.partial(sel.unregister, pidfd))
        killed, pipes, ended = None, 2, None
        deadline = t0 + lim.timeout
        over_disk = _disk_watch(workdir, lim, t0,
                                lambda: _procs._held_deleted_bytes(_procs._run_pids(proc.pid, plan.cgroup)))
        try:
            while True:
                now = time.monotonic()
                if ended is None and over_disk(now):
                    killed = "disk"
                    break
                if ended is None and _procs._exited(proc.pid):
                    ended = now
                    self._end(proc, plan)
                if ended is not None and (not pipes or now - ended > _DRAIN_S):
                    break  # a pipe still open now is held by something only a process-group kill misses
                if now >= deadline:
                    killed = "timeout"
                    break
                wait = min(deadline - now, _DISK_EVERY_S if pidfd is not None else 0.02)
                for key, _ in sel.select(timeout=wait if ended is None else min(wait, _DRAIN_S)):
                    if key.data is not None:  # the pidfd (exited: only wakes us) or stdin (room to write)
                        key.data()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        pipes -= 1
                        continue
                    bufs[key.fileobj] += chunk  # type: ignore[index]
                if sum(len(b) for b in bufs.values()) > lim.output_bytes:
                    killed = "output"
                    break
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
            stdin.close()
        if killed:
            self._stop(proc, plan)
            self._end(proc, plan)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for pipe in bufs:
            pipe.close()  # type: ignore[union-attr]
        truncated = killed == "output"
        cap = int(lim.output_bytes)
        return bytes(bufs[proc.stdout][:cap]), bytes(bufs[proc.stderr][:cap]), killed, truncated


class _Feed:
    """A run's stdin, written from the pump loop as the pipe takes it (non-blocking), so the
    timeout and the other limits keep being watched while a program does not read it."""

    def __init__(self, proc: subprocess.Popen[bytes], data: bytes, sel: selectors.BaseSelector) -> None:
        self.proc, self.pending, self.sel, self.fd = proc, memoryview(data), sel, -1
        if proc.stdin is not None:
            self.fd = proc.stdin.fileno()
            os.set_blocking(self.fd, False)
            sel.register(self.fd, selectors.EVENT_WRITE, data=self.write)

    def write(self) -> None:
        try:
            self.pending = self.pending[os.write(self.fd, self.pending[:65536]):]
        except BlockingIOError:
            return
        except OSError:  # the program closed it (or exited): the rest is not wanted
            self.pending = self.pending[:0]
        if not self.pending:
            self.sel.unregister(self.fd)
            self.close()

    def close(self) -> None:
        self.fd = -1
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


def _disk_watch(workdir: str | None, lim: Limits, t0: float,
                held: Callable[[], int] = lambda: 0) -> Callable[[float], bool]:
    """``over(now)``: have the working directory and the unlinked files the run still holds open
    (``held()``) grown past the disk limit? (measured at most every :data:`_DISK_EVERY_S`; always
    False without a working directory)"""
    if workdir is None:
        return lambda now: False
    budget, due = lim.disk_mb * 1024 * 1024, [t0 + _DISK_EVERY_S]

    def over(now: float) -> bool:
        if now < due[0]:
            return False
        due[0] = now + _DISK_EVERY_S
        hidden = held()
        return hidden > budget or _over_disk(workdir, budget - hidden)

    return over


def _over_disk(root: str, budget: int) -> bool:
    """Does the tree under ``root`` take more than ``budget`` bytes of disk (or hold more than
    :data:`_DISK_ENTRIES` entries)? Links are not followed. A folder the program made unreadable
    (same user, no root drop) cannot be measured, and counts as over: changing its mode from here
    could be turned, by a folder swapped for a link meanwhile, into changing a host path's. Nor
    can a folder whose path is longer than PATH_MAX (files there went uncounted), which counts as
    over too: no program needs such paths."""
    total, seen, todo = 0, 0, [root]
    while todo:
        path = todo.pop()
        try:
            it = os.scandir(path)
        except PermissionError:
            return True
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return True
            continue
        with it:
            for entry in it:
                seen += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    if exc.errno == errno.ENAMETOOLONG:
                        return True
                    continue
                total += st.st_blocks * 512
                if total > budget or seen > _DISK_ENTRIES:
                    return True
                if stat.S_ISDIR(st.st_mode):
                    todo.append(entry.path)
    return False


#: exec errors that say the command line itself cannot run (too long, or naming no program)
_EXEC_ARG_ERRORS = {errno.E2BIG, errno.ENAMETOOLONG, errno.ENOTDIR, errno.ENOEXEC, errno.ELOOP, errno.EISDIR}


def _check_argv(argv: Sequence[str]) -> list[str]:
    """The command line as a list of strings the kernel takes (no NUL bytes, encodable), or
    :class:`ValidationError` (not a bare ValueError, TypeError or UnicodeEncodeError from Popen;
    a plain string is refused rather than run character by character)."""
    hint = "give a command as a list of strings, e.g. ['echo', 'hi']"
    if isinstance(argv, str | bytes) or not argv:
        raise ValidationError("nothing to run" if not argv else "a command must be a list of arguments, not one "
                              "string", hint=hint)
    out = []
    for arg in argv:
        try:
            raw = os.fsencode(arg)
        except (TypeError, UnicodeEncodeError) as exc:
            raise ValidationError(f"a command argument cannot be passed to a program: {exc}", hint=hint) from None
        if b"\x00" in raw:
            raise ValidationError("a command argument holds a NUL byte", hint=hint)
        out.append(arg)
    return out


def _encode_stdin(stdin: str | bytes | None) -> bytes:
    if not stdin:
        return b""
    if isinstance(stdin, str):
        try:
            return stdin.encode()
        except UnicodeEncodeError as exc:
            raise ValidationError(f"stdin is not encodable text: {exc}") from None
    try:
        return bytes(stdin)
    except TypeError:
        raise ValidationError(f"stdin must be text or bytes, not {type(stdin).__name__}") from None


def _list_files(workdir: str, ident: tuple[int, int]) -> list[str]:
    """The regular files under the working directory (relative paths), without following links,
    and only while ``workdir`` is still the directory made for the run: the program owns it and
    may have swapped it for a link to a host directory (root would list that), a FIFO or a file.
    Iterative (a nested tree deeper than the recursion limit crashed ``Path.rglob``); a folder
    whose path is longer than PATH_MAX is skipped (``is_file`` raised ENAMETOOLONG)."""
    try:
        st = os.lstat(workdir)
    except OSError:
        return []
    if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != ident:
        return []
    files: list[str] = []
    todo, seen = [""], 0
    while todo and seen <= _DISK_ENTRIES:
        rel = todo.pop()
        try:
            it = os.scandir(os.path.join(workdir, rel))
        except OSError:
            continue
        with it:
            for entry in it:
                seen += 1
                name = os.path.join(rel, entry.name) if rel else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(name)
                    elif entry.is_file(follow_symlinks=False):
                        files.append(name)
                except OSError:
                    continue
    return sorted(files)


def _remove_workdir(workdir: str) -> None:
    """Remove the run's working directory, whatever the program left there: not a directory any
    more (a FIFO, which ``shutil.rmtree`` opened and blocked on for ever, a link, a file) is
    unlinked; a tree deeper than the recursion limit (``rmtree`` raised RecursionError and left it
    on disk) is finished by ``rm -rf``, which walks any depth."""
    try:
        st = os.lstat(workdir)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(workdir)
        return
    with contextlib.suppress(RecursionError):
        shutil.rmtree(workdir, ignore_errors=True)
    if os.path.lexists(workdir) and (rm := shutil.which("rm", path="/usr/bin:/bin")):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([rm, "-rf", "--one-file-system", "--", workdir], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)


def with_limits(base: Limits, **changes: Any) -> Limits:
    return replace(base, **{k: v for k, v in changes.items() if v is not None})
