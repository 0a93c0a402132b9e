"""The run directory: one folder per run, one sub-folder of Parquet parts per table.

    data/runs/<run>/recipe.yaml         the resolved recipe, with package versions
    data/runs/<run>/<table>/part-*.parquet
    data/runs/<run>/<table>/_parts.json the parts the stage will write (written before it starts)
    data/runs/<run>/<table>/_SUCCESS.json  written last: the stage is complete

Writes are atomic (temp file + rename in the same folder), so a killed run leaves either a whole
part or none, and a resumed run never duplicates a row.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.schemas import TABLES


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


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """Paths and table access for one run. Knows nothing about stages or recipes."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.name = self.root.name

    # ---- layout -------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / table

    def part_path(self, table: str, part: str) -> Path:
        return self.table_dir(table) / f"{part}.parquet"

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
    def existing_parts(self, table: str) -> set[str]:
        folder = self.table_dir(table)
        if not folder.is_dir():
            return set()
        return {p.stem for p in folder.glob("part-*.parquet")}

    def write_part(self, table: str, part: str, table_data: pa.Table) -> Path:
        path = self.part_path(table, part)
        atomic_write_parquet(path, table_data)
        return path

    def remove_stale_parts(self, table: str, keep: set[str]) -> list[str]:
        """Parts left by an earlier partitioning of the same stage (never read twice)."""
        stale = sorted(self.existing_parts(table) - keep)
        for part in stale:
            self.part_path(table, part).unlink(missing_ok=True)
        # a write killed half-way leaves its temp file: never read as data, but not kept either
        if self.table_dir(table).is_dir():
            for tmp in self.table_dir(table).glob(".tmp-*"):
                tmp.unlink(missing_ok=True)
        return stale

    # ---- markers ------------------------------------------------------------------------
    def success_path(self, table: str) -> Path:
        return self.table_dir(table) / "_SUCCESS.json"

    def parts_plan_path(self, table: str) -> Path:
        return self.table_dir(table) / "_parts.json"

    def is_complete(self, table: str) -> bool:
        return self.success_path(table).exists()

    def read_success(self, table: str) -> dict | None:
        path = self.success_path(table)
        return json.loads(path.read_text()) if path.exists() else None

    def read_plan(self, table: str) -> dict | None:
        path = self.parts_plan_path(table)
        return json.loads(path.read_text()) if path.exists() else None

    # ---- reading ------------------------------------------------------------------------
    def has_table(self, table: str) -> bool:
        return bool(self.existing_parts(table))

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """All parts of a table (schema from curation.schemas when known); empty when none."""
        schema = TABLES.get(table)
        files = sorted(self.table_dir(table).glob("part-*.parquet")) if self.table_dir(table).is_dir() else []
        if not files:
            if schema is None:
                raise FileNotFoundError(f"table {table!r} has no parts in {self.root}")
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        import pyarrow.dataset as ds  # imported here: it pulls in pandas, slow for worker start-up

        dataset = ds.dataset([str(f) for f in files], format="parquet", schema=schema)
        return dataset.to_table(columns=columns)

    def read_rows(self, table: str, columns: list[str] | None = None) -> list[dict]:
        return self.read_table(table, columns).to_pylist()
