"""The run directory: one folder per run, one sub-folder of Parquet parts per table.

    <runs>/<run>/recipe.yaml            the resolved recipe, with package versions
    <runs>/<run>/<table>/part-*.parquet
    <runs>/<run>/<table>/_parts.json    the parts the stage will write (written before it starts)
    <runs>/<run>/<table>/_SUCCESS.json  written last: the stage is complete

A run folder is a local path or a URI of any filesystem pyarrow or fsspec knows: `s3://bucket/runs/x`
(pyarrow's S3, credentials and endpoint from the usual AWS_* variables), `gs://`, `hdfs://`,
`file://`, or an fsspec protocol such as `memory://` (through pyarrow's FSSpecHandler). Every read
and write of the run's tables goes through one `pyarrow.fs.FileSystem`, so the layout is the same
everywhere.

Writes are atomic: on a local disk, temp file + rename in the same folder; on an object store, one
PUT of the whole object (an object appears whole or not at all). A killed run leaves either a whole
part or none, and a resumed run never duplicates a row.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from curation.credentials import url_credentials
from curation.schemas import TABLES
from curation.storage import atomic_write_bytes, ensure_parent, is_local, is_stale_temp, list_files, read_file, write_file


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def filesystem_for(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI."""
    text = str(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), str(Path(text).expanduser().absolute())
    found = url_credentials(text)
    if found:  # named, never echoed: the message is printed
        raise ValueError(f"{urlsplit(text).scheme}:// URI with credentials in it ({'; '.join(found)}): give them in the "
                         "environment (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never in the run's address")
    return _remote_filesystem(text)


@lru_cache(maxsize=64)
def _remote_filesystem(text: str) -> tuple[pafs.FileSystem, str]:
    """One client per URI and process: an S3 client costs milliseconds to make, and the teacher
    stages open the run folder for every batch they record."""
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec comes with `datasets`
            raise ValueError(f"{text}: pyarrow does not know this filesystem and fsspec is not installed") from None
        try:
            ffs, path = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as err:
            raise ValueError(f"{text}: no filesystem for this URI ({err})") from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return fs, path.rstrip("/")


def file_exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    atomic_write_bytes(path, parquet_bytes(table))


class RemoteRunError(ValueError):
    """A command that needs the run on a local disk was given a remote run."""


class RunDir:
    """Paths and table access for one run. Knows nothing about stages or recipes.

    `uri` names the run wherever it is; `fs` + `base` reach it. The `Path` attributes (`root`,
    `table_dir`, ...) exist for local runs only: tools that hand paths to other programs (DuckDB's
    `read_parquet`, Label Studio, the trainer) use them; the pipeline itself uses the methods."""

    def __init__(self, location: Path | str):
        self.fs, self.base = filesystem_for(location)
        self.is_local = is_local(self.fs)
        self.uri = self.base if self.is_local else str(location).rstrip("/")
        self.name = posixpath.basename(self.base)

    def __repr__(self) -> str:
        return f"RunDir({self.uri!r})"

    def path(self, *parts: str) -> str:
        """A path inside the run, for `self.fs`."""
        return posixpath.join(self.base, *parts)

    # ---- files --------------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return file_exists(self.fs, self.path(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        return read_file(self.fs, self.path(*parts))

    def write_bytes(self, rel: str, data: bytes) -> None:
        write_file(self.fs, self.path(rel), data)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json_bytes(obj))

    def read_json(self, rel: str) -> Any | None:
        try:  # one request, not a look-up and then a read (each is a round trip on a store)
            return json.loads(self.read_bytes(rel))
        except FileNotFoundError:
            return None

    def files(self, rel: str, recursive: bool = False) -> list[str]:
        """Paths (for `self.fs`) of the files under a folder of the run, sorted."""
        return sorted(i.path for i in list_files(self.fs, self.path(rel), recursive))

    def delete(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.path(rel))

    # ---- local paths (local runs only) --------------------------------------------------
    @property
    def root(self) -> Path:
        if not self.is_local:
            raise RemoteRunError(f"{self.uri} is not on this machine's disk; this needs a local run folder")
        return Path(self.base)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def part_path(self, table: str, part: str) -> Path:
        return self.table_dir(table) / f"{part}.parquet"

    def success_path(self, table: str) -> Path:
        return self.table_dir(table) / "_SUCCESS.json"

    @property
    def recipe_path(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def teacher_cache_dir(self) -> Path:
        return self.root / "teacher-cache"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    # ---- parts --------------------------------------------------------------------------
    def part_files(self, table: str) -> list[str]:
        return [p for p in self.files(table) if _is_part(p)]

    def existing_parts(self, table: str) -> set[str]:
        return {posixpath.basename(p)[: -len(".parquet")] for p in self.part_files(table)}

    def write_part(self, table: str, part: str, table_data: pa.Table) -> None:
        self.write_bytes(f"{table}/{part}.parquet", parquet_bytes(table_data))

    def remove_stale_parts(self, table: str, keep: set[str]) -> list[str]:
        """Parts left by an earlier partitioning of the same stage (never read twice)."""
        stale = sorted(self.existing_parts(table) - keep)
        for part in stale:
            self.delete(f"{table}/{part}.parquet")
        # A local write killed half-way leaves its temp file: never read as data, but not kept.
        # Only a gone writer's: another live process may be about to rename its own into place.
        for info in list_files(self.fs, self.path(table)):
            mtime = info.mtime.timestamp() if info.mtime is not None else None
            if is_stale_temp(posixpath.basename(info.path), mtime):
                try:
                    self.fs.delete_file(info.path)
                except FileNotFoundError:  # another cleaner was first
                    pass
        return stale

    # ---- markers ------------------------------------------------------------------------
    def is_complete(self, table: str) -> bool:
        return self.exists(table, "_SUCCESS.json")

    def read_success(self, table: str) -> dict | None:
        return self.read_json(f"{table}/_SUCCESS.json")

    def write_success(self, table: str, summary: dict) -> None:
        self.write_json(f"{table}/_SUCCESS.json", summary)

    def read_plan(self, table: str) -> dict | None:
        return self.read_json(f"{table}/_parts.json")

    def write_plan(self, table: str, plan: dict) -> None:
        self.write_json(f"{table}/_parts.json", plan)

    # ---- the recipe ---------------------------------------------------------------------
    def has_recipe(self) -> bool:
        return self.exists("recipe.yaml")

    def read_recipe(self) -> dict:
        import yaml

        return yaml.safe_load(self.read_bytes("recipe.yaml")) or {}

    # ---- reading ------------------------------------------------------------------------
    def has_table(self, table: str) -> bool:
        return bool(self.part_files(table))

    def read_part(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """One part file (a path from `part_files`), with the table's schema when known."""
        table = posixpath.basename(posixpath.dirname(path))
        return pq.read_table(path, filesystem=self.fs, schema=TABLES.get(table), columns=columns)

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """All parts of a table (schema from curation.schemas when known); empty when none."""
        schema = TABLES.get(table)
        files = self.part_files(table)
        if not files:
            if schema is None:
                raise FileNotFoundError(f"table {table!r} has no parts in {self.uri}")
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        import pyarrow.dataset as ds  # imported here: it pulls in pandas, slow for worker start-up

        dataset = ds.dataset(files, format="parquet", schema=schema, filesystem=self.fs)
        return dataset.to_table(columns=columns)

    def read_rows(self, table: str, columns: list[str] | None = None) -> list[dict]:
        return self.read_table(table, columns).to_pylist()

    # ---- whole folders ------------------------------------------------------------------
    def upload_dir(self, local: Path, rel: str, skip_same_size: tuple[str, ...] = ()) -> None:
        """Copy a local folder into the run (remote runs build their exports locally first).
        Files under `skip_same_size` sub-folders (videos) are not sent again when the copy there
        already has the same size; files the new folder no longer has are removed."""
        target = self.path(rel)
        remote = {posixpath.relpath(i.path, target): i.size for i in list_files(self.fs, target, recursive=True)}
        wanted: set[str] = set()
        for src in sorted(p for p in local.rglob("*") if p.is_file()):
            name = src.relative_to(local).as_posix()
            wanted.add(name)
            if name.split("/", 1)[0] in skip_same_size and remote.get(name) == src.stat().st_size:
                continue
            dest = posixpath.join(target, name)
            ensure_parent(self.fs, dest)
            with src.open("rb") as fh, self.fs.open_output_stream(dest) as out:
                shutil.copyfileobj(fh, out, 8 << 20)  # one PUT per file; videos are streamed
        for name in sorted(set(remote) - wanted):
            self.fs.delete_file(posixpath.join(target, name))


def pull_run(run_dir: RunDir, dest: Path) -> int:
    """Copy a (remote) run folder to a local folder, whole; returns the number of files. Tools
    that need local paths (DuckDB's views, Label Studio, the trainer) then work on the copy."""
    files = list_files(run_dir.fs, run_dir.base, recursive=True)
    pafs.copy_files(run_dir.base, str(dest), source_filesystem=run_dir.fs,
                    destination_filesystem=pafs.LocalFileSystem(), use_threads=True)
    return len(files)


def _is_part(path: str) -> bool:
    name = posixpath.basename(path)
    return name.startswith("part-") and name.endswith(".parquet")


# A run name is one folder inside the runs root: '../x', 'a/b' or '/abs' would put a run (and
# everything a later `vstw run` deletes as stale in it) outside. It is also a file name on every
# store and the `run` column of every table.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RunNameError(ValueError):
    """A run name that is not a single safe folder name; the message is meant for the user."""


def check_run_name(name: str) -> str:
    """`name` if it is a valid run name, else RunNameError saying what is wrong with it."""
    if isinstance(name, str) and RUN_NAME.fullmatch(name):
        return name
    raise RunNameError(f"run name {name!r} is not allowed ({_run_name_problem(name)}): a run name is one folder name inside "
                       "the runs root, 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. demo-2)")


def _run_name_problem(name) -> str:
    if not isinstance(name, str) or not name:
        return "it is empty"
    if name in (".", ".."):
        return "it means the runs root itself" if name == "." else "it means the folder above the runs root"
    if "/" in name or "\\" in name:
        return "it is a path, not a name"
    if len(name) > 128:
        return f"it has {len(name)} characters"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
    return f"it has {', '.join(map(repr, bad))} in it" if bad else "it starts with a '.', '_' or '-'"


def safe_run_name(text: str) -> str:
    """A valid run name made from free text (a recipe's name), for default run names."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")[:100].rstrip("-")
    return slug or "run"


def run_location(runs_root: Path | str, run_name: str) -> str:
    """<runs_root>/<run_name>, for a local folder or a URI; refuses a run name that is a path."""
    check_run_name(run_name)
    root = str(runs_root).rstrip("/")
    return f"{root}/{run_name}" if is_uri(root) else str(Path(root) / run_name)
