"""Whole-file reads and writes on any `pyarrow.fs` filesystem: the local disk, an object store
(S3, GCS), or an fsspec filesystem wrapped by pyarrow. Used by the run folder
(pipelines/rundir.py) and the teacher's reply cache, so both are atomic in the same way:

- local disk: temp file in the same folder + rename (a reader never sees half a file);
- object store: one PUT of the whole object (it appears whole or not at all).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

import pyarrow.fs as pafs


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
