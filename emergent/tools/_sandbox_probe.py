"""What this machine gives a sandboxed process (probed once per process), and the set-up every run
shares: the bubblewrap command line, the scrubbed environment, an interpreter the sandbox user may
run. Part of :mod:`emergent.tools.sandbox`, which re-exports the public names."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergent.errors import ConfigError, ValidationError
from emergent.tools._sandbox_procs import _is_root

if TYPE_CHECKING:
    from emergent.tools.sandbox import _Plan

# The probes run /bin/true set up exactly as a run is, with the sandbox's own _Plan, _preexec and
# _popen; emergent.tools.sandbox imports this module, so those are imported when a probe runs.


def _probe(plan: _Plan) -> bool:
    """Run /bin/true with exactly the set-up a run with ``plan`` gets."""
    from emergent.tools.sandbox import Limits, _popen, _preexec
    if not sys.platform.startswith("linux"):
        return False
    try:
        proc = _popen(["/bin/true"], plan, _preexec(Limits(), plan), stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        return proc.wait(10) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


@functools.lru_cache(maxsize=8)
def _bwrap_help(exe: str) -> str:
    """What ``exe --help`` prints (the options this bubblewrap takes), or nothing."""
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout + out.stderr


def _bwrap_sizes(exe: str) -> bool:
    """Does this bubblewrap take ``--size`` (a size for the next ``--tmpfs``, 0.7.0+)?"""
    return "--size" in _bwrap_help(exe)


def bwrap_disables_userns(exe: str) -> bool:
    """Does this bubblewrap take ``--disable-userns`` (no user namespace inside the sandbox, 0.8.0+)?"""
    return "--disable-userns" in _bwrap_help(exe)


def bwrap_argv(exe: str, workdir: str, network: bool, tmpfs_bytes: int | None = None) -> list[str]:
    """bubblewrap in front of a command: new namespaces (user, pid, net, ipc, uts, cgroup), a
    read-only view of the system directories, a private /tmp and /dev/shm, and only ``workdir``
    (and those two) writable.

    A tmpfs lives in RAM that no ``RLIMIT_AS`` counts, and bubblewrap's are half the machine's RAM
    by default: /tmp and /dev/shm get ``tmpfs_bytes`` each (where bubblewrap takes ``--size``), and
    the root and /dev (tmpfs bubblewrap makes for the mount points) are remounted read-only, so a
    run cannot fill the host's memory by writing files."""
    size = ["--size", str(int(tmpfs_bytes))] if tmpfs_bytes and _bwrap_sizes(exe) else []
    args = [exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    if bwrap_disables_userns(exe):  # no nested user namespace: the run stays without capabilities
        args[2:2] = ["--unshare-user", "--disable-userns"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "etc"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             *size, "--tmpfs", "/tmp"]
    if not _is_root():  # root runs the system interpreter instead
        for prefix in sorted({str(Path(sys.prefix).resolve()), str(Path(sys.base_prefix).resolve())}):
            if not prefix.startswith(("/usr", "/bin", "/lib")):  # our interpreter, when it lives elsewhere
                args += ["--ro-bind-try", prefix, prefix]
    if network:
        args.append("--share-net")
    if workdir != "/":
        args += ["--bind", workdir, workdir]
    return [*args, "--remount-ro", "/", "--chdir", workdir, "--"]


def _probe_bwrap(drop: bool) -> bool:
    from emergent.tools.sandbox import Limits, _Plan, _preexec
    exe = shutil.which("bwrap")
    if exe is None or not sys.platform.startswith("linux"):
        return False
    pre = _preexec(Limits(), _Plan("pid-namespace", bwrap=True, drop=drop))
    try:
        return subprocess.run([*bwrap_argv(exe, "/", False), "/bin/true"], preexec_fn=pre,  # noqa: PLW1509
                              stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _cgroup_dir() -> str | None:
    """Our own cgroup v2 directory, when we may make child cgroups there and the kernel has
    ``cgroup.kill`` (5.14+); else None."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = [ln[3:] for ln in Path("/proc/self/cgroup").read_text().splitlines() if ln.startswith("0::")]
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if " - cgroup2 " not in line or len(fields) < 5 or not own:
            continue
        root, mount = fields[3], fields[4]
        rel = own[0]
        if root != "/" and rel.startswith(root):
            rel = rel[len(root):]
        base = os.path.normpath(mount + "/" + rel.lstrip("/"))
        probe = os.path.join(base, f"emergent-probe-{os.getpid()}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        try:
            if os.path.exists(os.path.join(probe, "cgroup.kill")) and os.access(base, os.W_OK):
                return base
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(probe)
    return None


def _probe_pid_namespace(root: bool, userns: bool, netns: bool) -> tuple[str | None, bool]:
    """How a pid namespace can be made here: (``parent`` (our thread makes it, root only) or
    ``supervisor`` (a forked supervisor makes it) or None, with a private /proc or not)."""
    from emergent.tools.sandbox import _Plan
    ways = [("parent", True), ("supervisor", False)] if root else [("supervisor", False)]
    for private_proc in (True, False):
        for how, direct in ways:
            if _probe(_Plan("pid-namespace", netns=netns, userns=userns, private_proc=private_proc, direct=direct)):
                return how, private_proc
    return None, False


@functools.lru_cache(maxsize=1)
def _syscall_filter() -> tuple[str, ...]:
    """The calls every run is refused (empty without libseccomp: ``make sysdeps`` installs it)."""
    from emergent.tools._sandbox_procs import DENIED_SYSCALLS, _filter_program

    return DENIED_SYSCALLS if _filter_program() is not None else ()


@functools.lru_cache(maxsize=1)
def _after_setup_filter() -> tuple[str, ...]:
    """What runs of the ``unshare`` backend are refused on top: namespaces and mounts (bubblewrap's
    runs get ``--disable-userns`` instead; empty without libseccomp)."""
    from emergent.tools._sandbox_procs import DENIED_AFTER_SETUP, _filter_program

    return DENIED_AFTER_SETUP if _filter_program(after_setup=True) is not None else ()


@functools.lru_cache(maxsize=1)
def _no_network_filter() -> tuple[str, ...]:
    """What a run of the ``network`` level is refused on top (empty without libseccomp)."""
    from emergent.tools._sandbox_procs import DENIED_WITHOUT_NETWORK, _filter_program

    return DENIED_WITHOUT_NETWORK if _filter_program(unix_sockets=False) is not None else ()


def isolation() -> dict[str, Any]:
    """What this machine gives a sandboxed process (probed once per process, each mechanism by
    running ``/bin/true`` with it).

    ``level``: ``namespace`` (bubblewrap works), ``network`` (a network namespace via ``unshare``)
    or ``process`` (limits only). ``kill``: the strongest kill guarantee the default backend
    gets; ``kill_mechanisms``: those the ``unshare`` backend can be forced to (``Sandbox(kill=)``);
    ``pid_namespace_via``: ``parent`` (root: the program is our child and PID 1, no extra
    process) or ``supervisor`` (a forked supervisor in between, as for a user namespace)."""
    from emergent.tools.sandbox import KILLS, _Plan
    root = _is_root()
    bwrap = _probe_bwrap(root)
    userns = not root
    netns = _probe(_Plan("process-group", netns=True, userns=userns))
    via, proc = _probe_pid_namespace(root, userns, netns)
    pidns = via is not None
    subreaper = _probe(_Plan("subreaper"))
    cgroup = _cgroup_dir()
    kills = [k for k, ok in zip(KILLS, (pidns, subreaper, cgroup is not None, True), strict=True) if ok]
    return {"level": "namespace" if bwrap else "network" if netns else "process", "network_namespace": netns,
            "kill": "pid-namespace" if bwrap else kills[0], "kill_mechanisms": kills,
            "pid_namespace": pidns, "pid_namespace_via": via, "private_proc": proc, "subreaper": subreaper,
            "cgroup": cgroup,
            "user_namespace": userns and netns, "rlimits": True, "drops_privileges": root,
            "syscall_filter": list(_syscall_filter()),
            "syscall_filter_without_network": list(_no_network_filter()) if netns else [],  # unshare backend
            "syscall_filter_unshare_backend": list(_after_setup_filter()),
            # any backend, without network (where libseccomp is installed); empty: no filter, any family
            "socket_families_without_network": ["AF_UNIX (not with unshare)", "AF_INET", "AF_INET6", "AF_NETLINK"]
            if _syscall_filter() else [],
            # for the default backend: bubblewrap's --disable-userns, or the unshare backend's filter
            "nested_user_namespaces": "refused" if (bwrap_disables_userns(shutil.which("bwrap") or "bwrap") if bwrap
                                                    else bool(_after_setup_filter())) else "allowed",
            "user": "a user id of its own for each run" if root else os.environ.get("USER", str(os.getuid())),
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
    root = _is_root()
    for cand in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3", "/usr/local/bin/python3"):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK) and (not root or _world_executable(cand)):
            return cand
    raise ConfigError("no Python interpreter the sandbox user may execute",
                      hint="install python3 system-wide (apt-get install python3)")


def scrub_env(extra: Mapping[str, str] | None, workdir: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    for k, v in (extra or {}).items():
        value = v if isinstance(v, str) else str(v)
        if not isinstance(k, str) or not k or "=" in k or "\x00" in k or "\x00" in value:
            # Popen raised a bare ValueError (NUL, '='), ``k.upper()`` an AttributeError
            raise ValidationError(f"sandbox environment variable {k!r} cannot be passed to a program",
                                  hint="names are non-empty strings without '=' or NUL; values have no NUL")
        try:
            os.fsencode(k), os.fsencode(value)
        except UnicodeEncodeError as exc:
            raise ValidationError(f"sandbox environment variable {k!r} is not encodable: {exc}") from None
        if not k.upper().startswith("EMERGENT_"):
            env[k] = value
    return env
