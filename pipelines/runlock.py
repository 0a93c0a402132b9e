"""One writer per run: an advisory lock on `<run>/.lock` while a command writes the run.

The lock is `fcntl.flock` on the lock file, so the kernel drops it when its process dies, SIGKILL
included: a killed run never leaves it stuck. The file holds who took it (pid, host, since when,
command), for the message that refuses a second writer; a file left behind by a killed holder is
taken over with a note. Locks are re-entrant within one thread (`vstw demo` holds it around its
teacher and `run_recipe` takes it again); another thread or process is refused.

A run on an object store (s3://, gs://, ...) has no local file to lock: it runs unguarded, with a
warning (two writers there compute the same parts twice; each object is still written whole).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from curation.storage import is_local, pid_alive
from pipelines.rundir import filesystem_for

LOCK_NAME = ".lock"
# flock unsupported (some network and FUSE filesystems), or no right to create the lock file
CANNOT_LOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EBADF, errno.EACCES, errno.EPERM, errno.EROFS)
UNGUARDED = "so no lock keeps a second writer of this run out: run one `vstw run` of it at a time"
_held: dict[tuple[str, int], int] = {}  # (lock path, thread) -> depth


class RunLockedError(RuntimeError):
    """Another process is writing the run."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str
    command: str

    @classmethod
    def me(cls, command: str | None) -> "Holder":
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else sys.argv
        return cls(os.getpid(), socket.gethostname(), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   command or shlex.join(argv)[:500])

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, since {self.since} ({self.command})"

    def gone_from_this_host(self) -> bool:
        return self.host == socket.gethostname() and not pid_alive(self.pid)


@contextmanager
def run_lock(location: str | Path, echo=print, command: str | None = None):
    """Hold the run's lock for the block; RunLockedError if another writer holds it."""
    fs, base = filesystem_for(location)
    if not is_local(fs):
        echo(f"warning: {location} is not on this machine's disk, {UNGUARDED}")
        yield
        return
    path = Path(base) / LOCK_NAME
    key = (str(path), threading.get_ident())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = _acquire(path, command, echo)
    if fd is None:
        yield
        return
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        _release(path, fd)


def _acquire(path: Path, command: str | None, echo) -> int | None:
    """The locked file's descriptor, or None where no lock can be had (then the run is unguarded:
    a filesystem without flock, or a folder this user cannot write, where no part could be
    written either)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _lock_file(path)
    except OSError as err:
        if err.errno not in CANNOT_LOCK:
            raise
        echo(f"warning: cannot lock {path} ({err.strerror}), {UNGUARDED}")
        return None
    left = _read(fd)
    if left is not None:
        # the kernel gave us the lock, so whoever wrote this is gone without releasing it
        echo(f"note: run folder {path.parent} was left locked by {left.describe()}, which is no longer running; "
             "taking the lock over")
    try:
        _write(fd, Holder.me(command))
    except OSError:  # another user's lock file, opened read-only: locked all the same
        pass
    return fd


def _lock_file(path: Path) -> int:
    """`path` opened and exclusively locked; RunLockedError when another process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY)  # another user's file: flock needs no write access
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise RunLockedError(_refusal(path, holder)) from None
        except OSError:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: lock the new one


def _release(path: Path, fd: int) -> None:
    try:
        if _same_file(fd, path):  # removed while still held, so no one sees a finished run as running
            path.unlink()
    except OSError:  # a folder this user may not change: the file stays, unlocked, and says whose it was
        pass
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read(fd: int) -> Holder | None:
    try:
        data = os.pread(fd, 64 << 10, 0)
        return Holder(**json.loads(data)) if data.strip() else None
    except (OSError, ValueError, TypeError):
        return None  # a half-written or foreign file: say less rather than fail


def _write(fd: int, holder: Holder) -> None:
    data = (json.dumps(asdict(holder), indent=2) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _refusal(path: Path, holder: Holder | None) -> str:
    run = path.parent
    if holder is None:  # it took the lock a moment ago and has not written its details yet
        return f"run folder {run} is being written by another process; wait for it to finish (lock file: {path})"
    message = f"run folder {run} is being written by another process: {holder.describe()}. "
    if holder.pid == os.getpid() and holder.host == socket.gethostname():
        return message + "This process already writes it (from another thread)."
    if holder.gone_from_this_host():
        return message + (f"Process {holder.pid} is gone, but a process it started still holds the lock file open: "
                          f"stop that process (lock file: {path})")
    return message + f"Wait for it to finish or stop it (lock file: {path}); one writer per run at a time."
