"""Run untrusted code and commands in a separate, limited process.

What a sandboxed run gets (each part where the kernel and our privileges allow it):

- resource limits: CPU seconds, address space, file size, open files, processes (``setrlimit``);
- a wall-clock timeout that kills the whole process group (its own session);
- a scrubbed environment: only PATH, HOME, TMPDIR, LANG (no secrets, no ``EMERGENT_*``) plus
  what the caller passes explicitly (``EMERGENT_*`` keys are dropped even then);
- a fresh temporary working directory, the only place meant to be written;
- stdout and stderr capped (the process is killed when it floods them);
- no network: a new, empty network namespace (``unshare(CLONE_NEWNET)``; needs root or
  user namespaces);
- with bubblewrap installed (and usable): new user, pid, network, ipc, uts and cgroup
  namespaces, a read-only view of /usr, /bin, /lib and /etc, a private /tmp, and the working
  directory as the only host path it can write or even see (level ``namespace``);
- when started as root: the process drops to the unprivileged ``nobody`` user, so it cannot write
  outside its working directory (and world-writable places such as /tmp), read other users'
  files, or read the parent's ``/proc/<pid>/environ``; the process limit then applies too
  (root ignores ``RLIMIT_NPROC``).

:func:`isolation` reports which of these this machine gives (``level``: ``namespace`` with
bubblewrap, ``network`` when only the network namespace works, else ``process``), and a sandbox
can require a level.

Not protected against: kernel exploits, side channels, reading world-readable files, writing to
world-writable directories as ``nobody``, or (without root) anything the current user may do on
the filesystem. Use a VM or a container runtime for hostile code.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emergent.errors import ConfigError, SandboxLimitError, ValidationError

CLONE_NEWNET = 0x40000000
NOBODY = 65534
LEVELS = ("none", "process", "network", "namespace")
EXIT_CODES = {"timeout": 124, "cpu": 152, "memory": 153, "file_size": 154, "output": 155, "processes": 156}
_NETNS_FAILED = 211


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 512
    file_size_mb: int = 64
    open_files: int = 256
    processes: int = 64
    output_bytes: int = 1_000_000
    network: bool = False

    def __post_init__(self) -> None:
        for name in ("timeout", "cpu_seconds", "memory_mb", "file_size_mb", "open_files", "processes",
                     "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValidationError(f"sandbox limit {name} must be positive, got {getattr(self, name)!r}")


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
    "processes": "it tried to start more processes than allowed (a fork bomb?)",
}


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _probe_netns() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()

    def pre() -> None:
        if libc.unshare(CLONE_NEWNET) != 0:
            os._exit(_NETNS_FAILED)

    try:
        return subprocess.run(["/bin/true"], preexec_fn=pre, timeout=10).returncode == 0  # noqa: PLW1509
    except (OSError, subprocess.SubprocessError):
        return False


def bwrap_argv(exe: str, workdir: str, network: bool) -> list[str]:
    """bubblewrap in front of a command: new namespaces (user, pid, net, ipc, uts, cgroup), a
    read-only view of the system directories, a private /tmp, and only ``workdir`` writable."""
    args = [exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "etc"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):  # root runs the system interpreter instead
        for prefix in sorted({str(Path(sys.prefix).resolve()), str(Path(sys.base_prefix).resolve())}):
            if not prefix.startswith(("/usr", "/bin", "/lib")):  # our interpreter, when it lives elsewhere
                args += ["--ro-bind-try", prefix, prefix]
    if network:
        args.append("--share-net")
    if workdir != "/":
        args += ["--bind", workdir, workdir]
    return [*args, "--chdir", workdir, "--"]


def _probe_bwrap(drop: bool) -> bool:
    exe = shutil.which("bwrap")
    if exe is None or not sys.platform.startswith("linux"):
        return False

    def pre() -> None:
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    try:
        return subprocess.run([*bwrap_argv(exe, "/", False), "/bin/true"], preexec_fn=pre,  # noqa: PLW1509
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=1)
def isolation() -> dict[str, Any]:
    """What this machine gives a sandboxed process (probed once per process).

    ``namespace``: bubblewrap works (private filesystem view, pid and network namespaces);
    ``network``: a network namespace via ``unshare``; ``process``: resource limits only."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    bwrap = _probe_bwrap(root)
    netns = bwrap or _probe_netns()
    return {"level": "namespace" if bwrap else "network" if netns else "process", "network_namespace": netns,
            "rlimits": True, "drops_privileges": root,
            "user": "nobody" if root else os.environ.get("USER", str(os.getuid())),
            "bubblewrap": bwrap, "bubblewrap_installed": shutil.which("bwrap") is not None}


def _world_executable(path: str) -> bool:
    """True when every directory on the way to ``path`` (and ``path``) lets others pass."""
    p = Path(path).resolve()
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in p.parents)
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def python_executable() -> str:
    """An interpreter the sandbox user can run (the system one when ours lives under /root)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    for cand in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3", "/usr/local/bin/python3"):
        if cand and Path(cand).exists() and (not root or _world_executable(cand)):
            return cand
    raise ConfigError("no Python interpreter the sandbox user may execute",
                      hint="install python3 system-wide (apt-get install python3)")


def scrub_env(extra: Mapping[str, str] | None, workdir: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    for k, v in (extra or {}).items():
        if not k.upper().startswith("EMERGENT_"):
            env[k] = str(v)
    return env


def _preexec(limits: Limits, netns: bool, drop: bool) -> Any:
    libc = _libc()
    mb = 1024 * 1024
    rl = [(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
          (resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb)),
          (resource.RLIMIT_FSIZE, (limits.file_size_mb * mb, limits.file_size_mb * mb)),
          (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
          (resource.RLIMIT_NPROC, (limits.processes, limits.processes)),
          (resource.RLIMIT_CORE, (0, 0))]

    def pre() -> None:
        for res, val in rl:
            resource.setrlimit(res, val)
        if netns and libc.unshare(CLONE_NEWNET) != 0:
            os._exit(_NETNS_FAILED)
        if drop:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return pre


def _group_members(pgid: int) -> int:
    """How many processes (zombies included) still belong to process group ``pgid``."""
    n = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            n += 1
    return n


def _classify(rc: int | None, stderr: str, killed: str | None) -> str | None:
    if killed:
        return killed
    if rc is None or rc == 0:
        return None
    if rc in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return "cpu"
    if rc in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return "file_size"
    tail = stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "bad_alloc" in tail:
        return "memory"
    if "Resource temporarily unavailable" in tail:
        return "processes"
    return None


class Sandbox:
    """Runs argv lists in a limited child process; see the module docstring for the guarantees."""

    def __init__(self, limits: Limits | None = None, *, root: str | Path | None = None,
                 require: str = "none", keep_workdir: bool = False, backend: str = "auto") -> None:
        if backend not in ("auto", "bwrap", "unshare"):
            raise ValidationError(f"unknown sandbox backend {backend!r}", hint="use auto, bwrap or unshare")
        self.backend = backend
        self.limits = limits or Limits()
        self.root = Path(root) if root else None
        self.require = require
        self.keep_workdir = keep_workdir

    def requiring(self, level: str) -> Sandbox:
        """The same sandbox, refusing runs that get less isolation than ``level``."""
        if level == self.require:
            return self
        return Sandbox(self.limits, root=self.root, require=level, keep_workdir=self.keep_workdir,
                       backend=self.backend)

    @property
    def level(self) -> str:
        info = isolation()
        if info["level"] == "namespace" and self.backend == "unshare":
            return "network"
        return str(info["level"])

    def check_level(self, require: str | None = None, network: bool = False) -> str:
        need = require or self.require
        if need not in (*LEVELS, "namespace"):
            raise ValidationError(f"unknown isolation level {need!r}", hint=f"use one of {', '.join(LEVELS)}")
        have = self.level if not network else ("namespace" if self.level == "namespace" else "process")
        order = {"none": 0, "process": 1, "network": 2, "namespace": 3}
        if order[have] < order[need]:
            raise ConfigError(f"the sandbox needs isolation {need!r} but this machine gives {have!r}",
                              hint="run as root or enable user namespaces (for a network namespace), "
                                   "or lower the policy's require_isolation", have=have, need=need)
        return have

    def run(self, argv: Sequence[str], *, stdin: str | bytes | None = None, limits: Limits | None = None,
            env: Mapping[str, str] | None = None, files: Mapping[str, str | bytes] | None = None,
            require: str | None = None) -> SandboxResult:
        if not argv:
            raise ValidationError("nothing to run", hint="give a command, e.g. ['echo', 'hi']")
        lim = limits or self.limits
        level = self.check_level(require, network=lim.network)
        info = isolation()
        use_bwrap = info["bubblewrap"] and self.backend in ("auto", "bwrap")
        netns = info["network_namespace"] and not lim.network and not use_bwrap
        drop = info["drops_privileges"]
        base = self.root
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
            if drop and not _world_executable(str(base)):  # the sandbox user could not reach it
                base = None
        workdir = tempfile.mkdtemp(prefix="emergent-sbx-", dir=base)
        try:
            self._seed(workdir, files or {}, drop)
            full = [*bwrap_argv(shutil.which("bwrap") or "bwrap", workdir, lim.network), *argv] if use_bwrap \
                else list(argv)
            result = self._spawn(full, stdin, lim, scrub_env(env, workdir), workdir, netns, drop)
            result.isolation = level
            result.files = sorted(str(p.relative_to(workdir)) for p in Path(workdir).rglob("*") if p.is_file())
            return result
        finally:
            if not self.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)

    def python(self, code: str, **kw: Any) -> SandboxResult:
        """Run Python source in an isolated interpreter (``-I -S``: no site-packages, no user env)."""
        return self.run([python_executable(), "-I", "-S", "-c", code], **kw)

    def shell(self, command: str, **kw: Any) -> SandboxResult:
        return self.run(["/bin/sh", "-c", command], **kw)

    @staticmethod
    def _seed(workdir: str, files: Mapping[str, str | bytes], drop: bool) -> None:
        for name, content in files.items():
            target = (Path(workdir) / name).resolve()
            if not target.is_relative_to(Path(workdir).resolve()):
                raise ValidationError(f"sandbox file {name!r} would land outside the working directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        if drop:
            for p in [Path(workdir), *Path(workdir).rglob("*")]:
                os.chown(p, NOBODY, NOBODY)
        os.chmod(workdir, 0o700)

    def _spawn(self, argv: Sequence[str], stdin: str | bytes | None, lim: Limits, env: dict[str, str],
               workdir: str, netns: bool, drop: bool) -> SandboxResult:
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(list(argv), cwd=workdir, env=env, stdin=subprocess.PIPE if stdin else
                                    subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, preexec_fn=_preexec(lim, netns, drop),  # noqa: PLW1509
                                    close_fds=True)
        except FileNotFoundError:
            raise ValidationError(f"command not found: {argv[0]!r}", hint="give a full path or a command on PATH") \
                from None
        except PermissionError as exc:
            raise ValidationError(f"cannot execute {argv[0]!r} in the sandbox: {exc}",
                                  hint="the sandbox user must be allowed to run it") from None
        if stdin:
            try:
                proc.stdin.write(stdin.encode() if isinstance(stdin, str) else stdin)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass
        out, err, killed, truncated = self._pump(proc, lim, t0)
        rc = proc.returncode
        if rc == _NETNS_FAILED and not out:
            raise ConfigError("could not create a network namespace for the sandbox",
                              hint="run as root, or run with network allowed")
        stderr = err.decode("utf-8", "replace")
        limit = _classify(rc, stderr, killed)
        if limit is not None:
            self._settle(proc)
        return SandboxResult(rc, out.decode("utf-8", "replace"), stderr, time.monotonic() - t0, limit, "",
                             truncated)

    @staticmethod
    def _settle(proc: subprocess.Popen[bytes], timeout: float = 3.0) -> None:
        """After a limit hit: wait (briefly) until every process of the group is gone and reaped,
        so the next run does not inherit a process count from a fork bomb."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and _group_members(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole process group (one signal suffices: a process with a pending SIGKILL
        cannot fork, and the kernel delivers to the group under the lock fork needs)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _pump(self, proc: subprocess.Popen[bytes], lim: Limits, t0: float) -> tuple[bytes, bytes, str | None, bool]:
        """Read both pipes until EOF, the output cap or the deadline; kill the group on a limit."""
        bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        sel = selectors.DefaultSelector()
        for pipe in bufs:
            sel.register(pipe, selectors.EVENT_READ)  # type: ignore[arg-type]
        killed = None
        deadline = t0 + lim.timeout
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                bufs[key.fileobj] += chunk  # type: ignore[index]
            if sum(len(b) for b in bufs.values()) > lim.output_bytes:
                killed = "output"
                break
        sel.close()
        if killed:
            self._kill(proc)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.05) if not killed else 5)
        except subprocess.TimeoutExpired:
            killed = killed or "timeout"
            self._kill(proc)
            proc.wait(5)
        self._kill(proc)  # whatever it left behind in its group
        for pipe in bufs:
            pipe.close()  # type: ignore[union-attr]
        truncated = killed == "output"
        cap = lim.output_bytes
        return bytes(bufs[proc.stdout][:cap]), bytes(bufs[proc.stderr][:cap]), killed, truncated


def with_limits(base: Limits, **changes: Any) -> Limits:
    return replace(base, **{k: v for k, v in changes.items() if v is not None})
