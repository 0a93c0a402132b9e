"""Parquet written a few rows at a time, the same bytes as one `pq.write_table` of all the rows.

A row group is written from one contiguous table (a table of many chunks encodes to other pages),
so rows are spilled to a scratch Arrow file as they come and written back one row group at a time
(1,048,576 rows: `write_table`'s default): at most one row group is ever in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curation.storage import atomic_writer

ROW_GROUP_ROWS = 1024 * 1024  # pq.write_table's default row group length


class RowGroupParquetWriter:
    """Rows appended as Arrow tables, spilled to a scratch Arrow file, then written through a
    ParquetWriter one row group at a time: the bytes of one `pq.write_table(all rows,
    compression="zstd")`, holding at most one row group. With `infer`, the column types are those
    `pa.Table.from_pylist` infers over all the rows (a column without a value is null-typed):
    rows are spilled in `schema`, the types each column takes once it holds a value."""

    def __init__(self, scratch: Path, schema: pa.Schema, infer: bool = False):
        self.scratch, self.schema, self.infer = scratch, schema, infer
        self.inferred: list[pa.Schema] = []
        self.sink = self.writer = None

    def add(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.infer:
            self.inferred.append(pa.Table.from_pylist(rows).schema)
        if self.writer is None:
            self.sink = pa.OSFile(str(self.scratch), "wb")
            self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def write(self, path: Path, empty: pa.Table) -> None:
        """The Parquet file at `path` (`empty`: what an export without rows writes)."""
        if self.writer is None:
            with atomic_writer(path) as fh:
                pq.write_table(empty, fh, compression="zstd")
            return
        self.writer.close()
        self.sink.close()
        schema = inferred_schema(self.inferred) if self.infer else self.schema
        with atomic_writer(path) as fh, pq.ParquetWriter(fh, schema, compression="zstd") as out:
            for group in self._row_groups(schema):
                out.write_table(group)
        self.scratch.unlink()

    def _row_groups(self, schema: pa.Schema) -> Iterator[pa.Table]:
        with pa.OSFile(str(self.scratch), "rb") as source:
            pending: list[pa.RecordBatch] = []
            count = 0
            for batch in pa.ipc.open_stream(source):
                pending.append(batch)
                count += batch.num_rows
                while count >= ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(pending)
                    yield _narrow(table.slice(0, ROW_GROUP_ROWS).combine_chunks(), schema)
                    rest = table.slice(ROW_GROUP_ROWS)
                    pending, count = rest.to_batches(), rest.num_rows
            if count:
                yield _narrow(pa.Table.from_batches(pending).combine_chunks(), schema)


def inferred_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """The schema `from_pylist` infers over all rows, from the ones it inferred over each slice:
    per column the first type that holds a value (list<null> only when no slice had an item)."""
    fields = []
    for name in schemas[0].names:
        types = [s.field(name).type for s in schemas]
        with_items = [t for t in types if not pa.types.is_null(t) and not (pa.types.is_list(t) and pa.types.is_null(t.value_type))]
        with_value = [t for t in types if not pa.types.is_null(t)]
        fields.append(pa.field(name, (with_items or with_value or [pa.null()])[0]))
    return pa.schema(fields)


def _narrow(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in the inferred types: columns that never held a value back to null / list<null>."""
    if table.schema == schema:
        return table
    columns = []
    for f in schema:
        column = table[f.name]
        if pa.types.is_null(f.type):
            column = pa.nulls(len(column))
        elif column.type != f.type:
            column = pa.array(column.to_pylist(), f.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
