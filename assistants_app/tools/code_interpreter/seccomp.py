"""The seccomp filter bwrap installs in the sandbox (`--seccomp FD`).

Namespaces hide the host, but every system call still reaches the host kernel. The filter turns
away what data-analysis Python never needs and what has a record of kernel exploits: io_uring,
ptrace and cross-process memory access, bpf, the key rings, userfaultfd, perf events, the whole
mount API, new namespaces (unshare, setns, clone with CLONE_NEW* flags), module loading, kexec,
reboot, swap, clock setting, and handle-based opens. They fail with EPERM; clone3 fails with ENOSYS
so that glibc falls back to clone, whose flags the filter can inspect (clone3 passes them in
memory, out of a filter's reach). Everything else is allowed: it is a deny list, kept short enough
that numpy, pandas and matplotlib are unaffected.

The BPF program is built with libseccomp through `pyseccomp` (a ctypes binding with the same API as
libseccomp's own Python module, which Debian builds only for the system Python), once per process,
and written to a memfd for each execution. System calls of other architectures (i386 via int 0x80,
x32) are killed by libseccomp's default bad-architecture action.
"""

from __future__ import annotations

import errno
import functools
import os

from .config import setting

# Denied with EPERM. Unknown names (older libseccomp) are skipped, see _build.
DENIED = (
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "perf_event_open",
    "fanotify_init",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "open_by_handle_at",
    "name_to_handle_at",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vhangup",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "nfsservctl",
)
# clone(2) flags that create namespaces: clone with any of them is denied like unshare.
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


class SeccompUnavailable(RuntimeError):
    pass


@functools.cache
def program() -> bytes:
    """The compiled BPF program (cached per process); SeccompUnavailable if it cannot be built."""
    try:
        import pyseccomp as sc
    except Exception as exc:  # ImportError, or RuntimeError when libseccomp.so.2 is missing
        raise SeccompUnavailable(
            f"no seccomp filter: pyseccomp/libseccomp not usable ({exc}); "
            "install the `pyseccomp` package and Debian's libseccomp2"
        ) from exc
    import tempfile

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except Exception:  # a name this libseccomp does not know for this architecture
            continue
    for flag in CLONE_NAMESPACE_FLAGS:
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def problem() -> str | None:
    try:
        program()
    except SeccompUnavailable as exc:
        return str(exc)
    return None


@functools.cache
def configured_problem() -> str | None:
    """Why the sandbox runs without the filter (a setting, or `problem()`), or None. Cached."""
    if not setting("CODE_INTERPRETER_SECCOMP"):
        return "no seccomp filter: disabled by CODE_INTERPRETER_SECCOMP=0"
    return problem()


def program_fd() -> int:
    """A fresh fd positioned at the start of the BPF program, for bwrap's --seccomp."""
    fd = os.memfd_create("sandbox-seccomp", os.MFD_CLOEXEC)
    data = program()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
