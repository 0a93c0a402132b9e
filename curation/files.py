"""What a local path is, asked before anything opens it.

A FIFO opened for reading blocks until someone writes to it (a run would hang forever), a
symbolic-link loop raises deep inside a library, a folder is not a video. Every input path
(manifests, videos, annotation files) is checked here first, by `os.stat` alone.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))  # fmt: skip


def file_problem(given: str, path: Path, unresolved: Path | None = None) -> tuple[str, str] | None:
    """(reason, message) when `path` is not a regular file that can be read, else None. Nothing
    is opened: a FIFO would block the run forever. The message names what the user wrote
    (`given`; `unresolved`: it joined to its base, to tell a dangling link)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if unresolved is not None and os.path.islink(unresolved):
            return "missing", f"{given}: a symbolic link to a file that does not exist"
        return "missing", f"{given}: no such file"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop", f"{given}: a loop of symbolic links (it never reaches a file)"
        return "missing", f"{str(given)[:300]}: cannot be read ({err.strerror or err})"
    except ValueError as err:  # an embedded NUL byte
        return "missing", f"{given!r:.300}: cannot be read ({err})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return "not_a_file", f"{given}: {kind}, not a regular file"
