"""Kernel containment for the processes that run model-generated code (Linux; stdlib only).

Loaded by server_main.py inside the AppWorld venv, in a process that has not yet run any
agent code; once applied nothing can be undone by that process or its threads:

    landlock   filesystem: read (and execute) only the listed paths, write only the listed
               folders (Landlock ABI >= 4, Linux 6.7+); TCP: no bind, no connect; with ABI >= 6
               also no signals to and no abstract UNIX sockets of processes outside the sandbox.
               Landlock also forbids ptrace of outside processes (so /proc/<pid>/mem, environ).
    seccomp    a BPF filter: socket(), fork/vfork/clone of a process, execve, ptrace,
               process_vm_*, unshare/setns, mount, bpf fail with EPERM; any signal-sending
               call (kill, tgkill, ...) kills the process with SIGSYS, so an agent that tries
               to kill anything dies itself, with a status that says so.
    capabilities  all dropped (bounding set too), no_new_privs set.
    rlimits    RLIMIT_AS (memory), RLIMIT_NPROC (ineffective for uid 0; seccomp bounds the
               process count at one), RLIMIT_CORE 0, RLIMIT_FSIZE.

`check()` fails closed: it raises `SandboxUnavailable` naming what is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import struct
from collections.abc import Iterable

MIN_LANDLOCK_ABI = 4

# --- Landlock (include/uapi/linux/landlock.h) --------------------------------------------------
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446  # same on x86_64 and aarch64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ = FS_READ_FILE | FS_READ_DIR
READ_EXEC = READ | FS_EXECUTE
WRITE = (
    READ | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG
    | FS_TRUNCATE | FS_REFER
)  # fmt: skip

_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP, _PR_SET_SECCOMP = 38, 24, 22
_SECCOMP_MODE_FILTER = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int


class SandboxUnavailable(RuntimeError):
    """The kernel lacks what containment needs; model code must not run here."""


def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    v = _libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(v) if v > 0 else 0


def _arch() -> tuple[int, dict[str, int]]:
    machine = platform.machine()
    if machine == "x86_64":
        nrs = dict(socket=41, fork=57, vfork=58, clone=56, clone3=435, execve=59, execveat=322,
                   ptrace=101, process_vm_readv=310, process_vm_writev=311, unshare=272,
                   setns=308, mount=165, bpf=321, kill=62, tkill=200, tgkill=234,
                   rt_sigqueueinfo=129, rt_tgsigqueueinfo=297, pidfd_send_signal=424,
                   init_module=175, finit_module=313, reboot=169, kexec_load=246)  # fmt: skip
        return 0xC000003E, nrs
    if machine == "aarch64":
        nrs = dict(socket=198, clone=220, clone3=435, execve=221, execveat=281, ptrace=117,
                   process_vm_readv=270, process_vm_writev=271, unshare=97, setns=268,
                   mount=40, bpf=280, kill=129, tkill=130, tgkill=131, rt_sigqueueinfo=138,
                   rt_tgsigqueueinfo=240, pidfd_send_signal=424, init_module=105,
                   finit_module=273, reboot=142, kexec_load=104)  # fmt: skip
        return 0xC00000B7, nrs
    raise SandboxUnavailable(f"no seccomp filter for machine {machine!r} (x86_64, aarch64 only)")


def check() -> int:
    """Landlock ABI if containment can be applied here; SandboxUnavailable otherwise."""
    if platform.system() != "Linux":
        raise SandboxUnavailable("model code runs only on Linux (Landlock and seccomp)")
    _arch()
    abi = landlock_abi()
    if abi < MIN_LANDLOCK_ABI:
        raise SandboxUnavailable(
            f"Landlock ABI {abi} here; containment needs ABI >= {MIN_LANDLOCK_ABI} (Linux 6.7+ "
            "with landlock in the lsm= boot list). Model code is not run without it."
        )
    return abi


# --- Landlock ruleset ---------------------------------------------------------------------------


def _handled_fs(abi: int) -> int:
    handled = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    if abi >= 2:
        handled |= FS_REFER
    if abi >= 3:
        handled |= FS_TRUNCATE
    if abi >= 5:
        handled |= FS_IOCTL_DEV
    return handled


def landlock(read: Iterable[str], read_exec: Iterable[str], write: Iterable[str],
             abi: int | None = None) -> None:  # fmt: skip
    """Restrict this process (and threads and children) to the listed paths; no TCP at all.

    Paths that do not exist are skipped; a file path gets only the file rights of its group.
    """
    abi = abi or check()
    handled = _handled_fs(abi)
    scoped = (SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("QQQ", handled, NET_BIND_TCP | NET_CONNECT_TCP, scoped)
    size = 24 if abi >= 6 else 16
    buf = ctypes.create_string_buffer(attr[:size], size)
    fd = _libc.syscall(_SYS_CREATE, buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise _err("landlock_create_ruleset")
    try:
        for group, access in ((read, READ), (read_exec, READ_EXEC), (write, WRITE)):
            for path in group:
                _add_path(int(fd), str(path), access & handled)
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _err("prctl(PR_SET_NO_NEW_PRIVS)")
        if _libc.syscall(_SYS_RESTRICT, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise _err("landlock_restrict_self")
    finally:
        os.close(int(fd))


def _add_path(ruleset_fd: int, path: str, access: int) -> None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            access &= _FILE_ONLY
        rule = struct.pack("=Qi", access, pfd)  # struct landlock_path_beneath_attr is packed
        buf = ctypes.create_string_buffer(rule, len(rule))
        if _libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(_RULE_PATH_BENEATH),
                         buf, ctypes.c_uint32(0)) != 0:  # fmt: skip
            raise _err(f"landlock_add_rule({path})")
    finally:
        os.close(pfd)


# --- seccomp ------------------------------------------------------------------------------------

_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x06
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_CLONE_THREAD = 0x00010000


def seccomp_filter() -> bytes:
    """The BPF program (see the module docstring for what it denies)."""
    audit_arch, nr = _arch()
    deny = [nr[k] for k in ("socket", "fork", "vfork", "execve", "execveat", "ptrace",
            "process_vm_readv", "process_vm_writev", "unshare", "setns", "mount", "bpf",
            "init_module", "finit_module", "reboot", "kexec_load") if k in nr]  # fmt: skip
    kill = [nr[k] for k in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
            "pidfd_send_signal")]  # fmt: skip
    eperm, enosys = _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.ENOSYS
    prog: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ_K, 1, 0, audit_arch),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),  # another ABI (e.g. int 0x80): refuse outright
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JGE_K, 0, 1, 0x40000000),  # x32 syscalls
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    for n in deny:
        prog += [(_JEQ_K, 0, 1, n), (_RET_K, 0, 0, eperm)]
    for n in kill:
        prog += [(_JEQ_K, 0, 1, n), (_RET_K, 0, 0, _RET_KILL_PROCESS)]
    # clone3 hides its flags in memory: ENOSYS makes libc fall back to clone, checked below.
    prog += [(_JEQ_K, 0, 1, nr["clone3"]), (_RET_K, 0, 0, enosys)]
    prog += [
        (_JEQ_K, 0, 4, nr["clone"]),
        (_LD_W_ABS, 0, 0, 16),  # low 32 bits of args[0] (flags)
        (_JSET_K, 1, 0, _CLONE_THREAD),
        (_RET_K, 0, 0, eperm),  # a new process
        (_RET_K, 0, 0, _RET_ALLOW),  # a thread
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


def seccomp() -> None:
    program = seccomp_filter()
    n = len(program) // 8
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxP", n, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _err("prctl(PR_SET_NO_NEW_PRIVS)")
    if _libc.prctl(_PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER),
                   ctypes.c_void_p(ctypes.addressof(fbuf)), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise _err("prctl(PR_SET_SECCOMP)")


# --- capabilities and limits --------------------------------------------------------------------


def drop_capabilities() -> None:
    """Empty the bounding, effective, permitted and inheritable sets (harmless when unprivileged)."""
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() not in (
            errno.EINVAL,
            errno.EPERM,
        ):
            raise _err(f"prctl(PR_CAPBSET_DROP, {cap})")
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(bytes(24), 24)  # two empty __user_cap_data_struct
    if _libc.syscall(126 if platform.machine() == "x86_64" else 91, hbuf, dbuf) != 0:
        raise _err("capset")


def set_limits(memory_bytes: int, nproc: int = 64, file_bytes: int = 1 << 30) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    except (ValueError, OSError):
        pass  # below the user's current count: seccomp's fork ban still holds


def contain(read: Iterable[str], read_exec: Iterable[str], write: Iterable[str],
            memory_bytes: int) -> int:  # fmt: skip
    """Everything above, in order; returns the Landlock ABI used."""
    abi = check()
    set_limits(memory_bytes)
    landlock(read, read_exec, write, abi)
    drop_capabilities()
    seccomp()
    return abi
