"""Whole-file reads and writes on any `pyarrow.fs` filesystem: the local disk, an object store
(S3, GCS), or an fsspec filesystem wrapped by pyarrow. Used by the run folder
(pipelines/rundir.py) and the teacher's reply cache, so both are atomic in the same way:

- local disk: temp file in the same folder + rename (a reader never sees half a file);
- object store: one PUT of the whole object (it appears whole or not at all).

A temp file is named `.tmp-<pid>-<host>-<random>` after the process writing it, so that cleanup
(`is_stale_temp`) removes only the files of writers that are gone, never a live writer's. It is
created with mode 0666 minus the user's umask, as `open()` would: 0644 under umask 022, so a
team can read a shared export (mkstemp's 0600 would keep everyone else out).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

TEMP_PREFIX = ".tmp-"
_TEMP_OWNER = re.compile(r"\.tmp-(\d+)-([0-9a-f]{8})-")
# another host's writer cannot be asked whether it is alive; no atomic write takes this long
FOREIGN_TEMP_MAX_AGE_S = 24 * 3600


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def host_tag(host: str | None = None) -> str:
    """8 hex characters for a host name: safe in a file name, whatever the name holds."""
    return hashlib.sha1((host or socket.gethostname()).encode()).hexdigest()[:8]


def temp_name(suffix: str = "") -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}{suffix}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with this pid is running (a zombie, killed but not yet
    reaped by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all there is


def is_stale_temp(name: str, mtime_s: float | None = None) -> bool:
    """Whether a `.tmp-*` file (its base name) is left by a writer that is gone: a process of this
    host that is not running (or this process: nothing of ours is in flight while cleanup runs),
    another host's file older than a day, or a name without an owner (written before temp names
    carried one)."""
    if not name.startswith(TEMP_PREFIX):
        return False
    owner = _TEMP_OWNER.match(name)
    if owner is None:
        return True
    pid, host = int(owner.group(1)), owner.group(2)
    if host != host_tag():
        return mtime_s is not None and time.time() - mtime_s > FOREIGN_TEMP_MAX_AGE_S
    return pid == os.getpid() or not pid_alive(pid)


def remove_stale_temps(folder: Path) -> None:
    """The temp files and folders gone writers left in a local folder; a live writer's stay."""
    if not folder.is_dir():
        return
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if not is_stale_temp(path.name, path.lstat().st_mtime):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # another cleaner was first
            pass


def _create_temp(folder: Path, suffix: str) -> tuple[int, Path]:
    # O_EXCL: never two writers in one file; 0o666: the kernel applies the umask, as open() does
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = folder / temp_name(suffix)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def make_temp_dir(parent: Path, suffix: str = "") -> Path:
    """A new folder named like a temp file, mode 0777 minus the umask (mkdtemp's is 0700)."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = parent / temp_name(suffix)
        try:
            tmp.mkdir(0o777)
            return tmp
        except FileExistsError:
            continue


class AtomicFile:
    """A binary file that appears at `path` whole or not at all: written as a temp file beside it
    (named after this process), renamed over `path` by `commit()`; `discard()` drops it."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = _create_temp(path.parent, path.suffix)
        self.path = path
        self.fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def commit(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_writer(path: Path):
    """An AtomicFile's file object for a `with` block: committed when the block ends without an
    error, discarded when it raises."""
    out = AtomicFile(path)
    try:
        yield out.fh
    except BaseException:
        out.discard()
        raise
    out.commit()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def ensure_parent(fs: pafs.FileSystem, path: str) -> None:
    """Object stores have no folders (creating one would add a marker object per write); other
    filesystems (local, fsspec's memory://, HDFS) need the parent to exist."""
    if not isinstance(fs, (pafs.S3FileSystem, pafs.GcsFileSystem)):
        fs.create_dir(posixpath.dirname(path), recursive=True)


def write_file(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write a whole file atomically (see the module's docstring)."""
    if is_local(fs):
        atomic_write_bytes(Path(path), data)
        return
    ensure_parent(fs, path)
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_file(fs: pafs.FileSystem, path: str) -> bytes:
    """The whole file; FileNotFoundError when it is not there."""
    with fs.open_input_stream(path) as src:
        return src.read()


def list_files(fs: pafs.FileSystem, folder: str, recursive: bool = False) -> list[pafs.FileInfo]:
    """The files in a folder (nothing when it does not exist)."""
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True, recursive=recursive))
    return [i for i in infos if i.type == pafs.FileType.File]
