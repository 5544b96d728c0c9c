"""Link-safe operations on a working directory that sandboxed code can write.

The server may run as root while the code in the sandbox owns `/mnt/data`: anything the code
leaves there (a symlink to /etc, a FIFO, a directory swapped for a link between a check and a use)
must never make the server touch a path outside it. So every operation here works relative to
directory file descriptors and never resolves a path through the workdir:

- directories are opened one component at a time with O_DIRECTORY|O_NOFOLLOW, so a symlinked
  directory fails with ELOOP (or ENOTDIR) instead of being followed;
- files are created with O_CREAT|O_EXCL|O_NOFOLLOW (an existing name, dangling link included, is
  left alone) and opened with O_NOFOLLOW|O_NONBLOCK (a FIFO cannot block the server), and the type
  is checked with fstat on the opened fd, not with a stat of the name beforehand;
- deletion is shutil.rmtree with dir_fd, which CPython implements with openat/unlinkat and
  O_NOFOLLOW checks (`shutil.rmtree.avoids_symlink_attacks`), and unlinkat for single files.

The thread's directory itself lives in CODE_INTERPRETER_WORKDIR_ROOT, which the sandbox cannot
write, so its entry cannot be swapped; everything below it can.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
# Deeper trees are refused rather than walked: each level holds one fd while it is scanned.
MAX_DEPTH = 32
_CHUNK = 1024 * 1024


class UnsafeEntry(OSError):
    """The name is not a regular file (or a directory on the way is not a real directory)."""


def check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    return name


@contextlib.contextmanager
def opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_workdir(parent: Path, name: str, *, uid: int | None, create: bool = True) -> int:
    """The fd of `parent/name`, created (0700) if missing and owned by `uid` when given.

    `parent` is the server's own CODE_INTERPRETER_WORKDIR_ROOT and is trusted; `name` is opened
    without following a link.
    """
    check_name(name)
    if create:
        parent.mkdir(parents=True, exist_ok=True)
    with opened(os.open(parent, O_DIR)) as pfd:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, O_DIR, dir_fd=pfd)
    try:
        if uid is not None and os.fstat(fd).st_uid != uid:
            os.fchown(fd, uid, uid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_parent(dirfd: int, relpath: str) -> tuple[int, str]:
    """An fd of the directory holding `relpath`'s last component (to close), and that component."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeEntry(f"bad path {relpath!r}")
    fd = os.dup(dirfd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, O_DIR, dir_fd=fd)  # ELOOP / ENOTDIR for anything but a directory
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def open_regular(dirfd: int, relpath: str) -> int:
    """A read-only fd of the regular file at `relpath`; UnsafeEntry for anything else."""
    pfd, name = _open_parent(dirfd, relpath)
    with opened(pfd):
        try:
            fd = os.open(name, O_READ, dir_fd=pfd)
        except OSError as exc:
            raise UnsafeEntry(f"{relpath}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeEntry(f"{relpath} is not a regular file")
    return fd


def read_regular(dirfd: int, relpath: str, limit: int) -> bytes | None:
    """The content of a regular file, or None when it is larger than `limit` bytes."""
    with opened(open_regular(dirfd, relpath)) as fd:
        chunks, total = [], 0
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                return None
        return b"".join(chunks)


def write_new(dirfd: int, name: str, chunks: Iterable[bytes], *, uid: int | None) -> bool:
    """Create `name` in the directory with `chunks`; False (nothing written) if the name exists.

    O_EXCL|O_NOFOLLOW: an existing entry of any kind, a dangling symlink included, is never
    opened, so a link planted by the code cannot redirect the write.
    """
    check_name(name)
    try:
        fd = os.open(name, O_CREATE, 0o644, dir_fd=dirfd)
    except FileExistsError:
        return False
    try:
        with opened(fd):
            if uid is not None:
                os.fchown(fd, uid, uid)
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    except BaseException:
        # unlinkat never follows the name; at worst it removes an entry the code itself replaced.
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dirfd)
        raise
    return True


def unlink(dirfd: int, relpath: str) -> None:
    """Remove one non-directory entry (never following links); missing entries are ignored."""
    pfd, name = _open_parent(dirfd, relpath)
    with opened(pfd), contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=pfd)


def remove_entry(dirfd: int, relpath: str) -> None:
    """Remove one entry of any type, a whole directory tree included, never following links."""
    pfd, name = _open_parent(dirfd, relpath)
    with opened(pfd):
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=pfd)


def remove_workdir(parent: Path, name: str) -> None:
    """Delete `parent/name` and everything in it without following any link inside."""
    check_name(name)
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux always has *at calls
        raise RuntimeError("this platform's shutil.rmtree is not safe against symlink attacks")
    try:
        pfd = os.open(parent, O_DIR)
    except FileNotFoundError:
        return
    with opened(pfd):
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)


# --------------------------------------------------------------------------- scanning

# Per regular file: what changes when it is written (inode, size, mtime, ctime).
Signature = tuple[int, int, int, int]


@dataclass
class Scan:
    files: dict[str, Signature] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)  # every entry, of any type
    disk_bytes: int = 0  # allocated blocks of every entry, hard links counted once
    entries: int = 0  # files, directories, links, FIFOs, sockets
    too_deep: bool = False
    truncated: bool = False  # stopped at max_entries

    def over(self, max_bytes: int, max_entries: int) -> str | None:
        """What limit the tree breaks, in words, or None."""
        if self.too_deep:
            return f"directories nested deeper than {MAX_DEPTH} levels"
        if self.truncated or self.entries > max_entries:
            return f"more than {max_entries} files and directories"
        if self.disk_bytes > max_bytes:
            return f"{self.disk_bytes} bytes used, the limit is {max_bytes}"
        return None


def scan(dirfd: int, *, max_entries: int = 1_000_000, uid: int | None = None) -> Scan:
    """Walk the tree under `dirfd` through directory fds, never following a link.

    With `uid`, entries not owned by it are chowned to it (lchown semantics: a link itself, never
    its target), which hands files seeded by an older server to the sandbox uid.
    """
    result = Scan()
    seen: set[tuple[int, int]] = set()
    _scan(dirfd, "", 0, result, seen, max_entries, uid)
    return result


def _scan(
    fd: int,
    prefix: str,
    depth: int,
    result: Scan,
    seen: set[tuple[int, int]],
    max_entries: int,
    uid: int | None,
) -> None:
    if depth > MAX_DEPTH:
        result.too_deep = True
        return
    with os.scandir(fd) as it:
        entries = []
        for entry in it:
            result.entries += 1
            if result.entries > max_entries:
                result.truncated = True
                return
            entries.append(entry.name)
    for name in entries:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            result.disk_bytes += st.st_blocks * 512
        if uid is not None and st.st_uid != uid:
            with contextlib.suppress(OSError):
                os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)  # the chown changed its ctime
        rel = prefix + name
        result.paths.add(rel)
        if stat.S_ISREG(st.st_mode):
            result.files[rel] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        elif stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, O_DIR, dir_fd=fd)
            except OSError:  # swapped for a link or removed since the stat: not followed
                continue
            with opened(sub):
                _scan(sub, rel + "/", depth + 1, result, seen, max_entries, uid)
            if result.truncated or result.too_deep:
                return
