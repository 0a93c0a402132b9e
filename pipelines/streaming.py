"""How a stage's inputs stream (docs/architecture.md, "How a stage streams").

A stage whose `load_inputs` is a `PartInputs` never holds a table whole. The runner:

1. reads only the key columns of the input table (the item id, its group, e.g. chain_id and
   video_id, and `status`) and plans parts of whole groups (`plan_groups`): the chains of one video
   are in one part, so every join a chain needs (its window's graph, its clips' captions, its
   video's row) is against the rows of the part's own videos;
2. routes the rows each part needs (`Staging.route`): one pass over every table the stage reads,
   one source part at a time; each row's part is looked up by its group or item id in a compact
   sorted index (`Router`) and the row is appended to one Arrow IPC file per table under
   <run>/_staging/<output table>/, as record batches numbered per part;
3. runs the stage's corpus-wide step, if it has one (`prepare`: e.g. the export's answer-letter
   balance), which keeps compact state or writes it per part into the staging folder;
4. gives each part's worker a `StagedPart` (the folder and its batch numbers): the worker reads
   only those batches and builds its records (`build`), so a part's memory is bounded by the part,
   not by the corpus. Under Ray the workers read the staging folder of the run themselves, so the
   driver never gathers a table either.

The staging folder is removed when the stage ends; a killed run's is rebuilt by the next one.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.memory import gc_paused

if TYPE_CHECKING:
    from pipelines.rundir import RunDir
    from pipelines.stage import StageParams

STAGING = "_staging"
# Rows routed to parts are buffered up to this many bytes before they are written as record
# batches: larger buffers make fewer, larger batches (a part's batches are read one by one).
ROUTE_BUFFER_BYTES = 64 << 20
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


# ---- parts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """One unit of work: its name (part-NNNNN-<hash of its item ids>), its size in items, and
    either the input rows themselves or, for streamed inputs, where its inputs are staged."""

    name: str
    rows: list[dict] | None = None
    size: int = 0
    staged: "StagedPart | None" = None

    @property
    def payload(self):
        """What a worker is sent: the rows, or the staged part it reads them from."""
        return self.rows if self.rows is not None else self.staged


def part_name(index: int, keys: Iterable) -> str:
    """A part's name: its position and a hash of its item ids (same ids -> same name)."""
    digest = hashlib.sha1("\n".join(str(k) for k in keys).encode()).hexdigest()[:10]
    return f"part-{index:05d}-{digest}"


@dataclass(frozen=True)
class GroupPlan:
    """Parts of whole groups: `keys` sorted by (group, key), `bounds[i]:bounds[i+1]` the rows of part i."""

    keys: pa.Table
    bounds: list[int]
    names: list[str]

    def part_of_rows(self) -> np.ndarray:
        """The part index of every row of `keys`."""
        sizes = np.diff(np.asarray(self.bounds, dtype=np.int64))
        return np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)


def plan_groups(keys: pa.Table, key: str, group: str, part_size: int) -> GroupPlan:
    """Deterministic parts of about `part_size` items that never split a group: items sorted by
    (group, key); a group joins the current part unless that would pass `part_size` (a group
    larger than `part_size` is a part of its own). Same keys -> same parts, whatever their order."""
    keys = keys.sort_by([(group, "ascending"), (key, "ascending")])
    groups = keys[group].combine_chunks() if keys.num_rows else pa.array([], keys.schema.field(group).type)
    starts = _run_starts(groups)
    bounds = [0]
    for start, end in zip(starts, [*starts[1:], keys.num_rows]):
        if end - bounds[-1] > part_size and start > bounds[-1]:
            bounds.append(start)
    if keys.num_rows:
        bounds.append(keys.num_rows)
    ids = keys[key]
    names = [part_name(i, ids.slice(a, b - a).to_pylist()) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return GroupPlan(keys, bounds, names)


def _run_starts(values: pa.Array) -> list[int]:
    """Indices where a run of equal values starts (nulls: one run)."""
    if len(values) == 0:
        return []
    ends = pc.run_end_encode(values).run_ends.to_numpy()
    return [0, *ends[:-1].tolist()]


# ---- routing ------------------------------------------------------------------------------------
def _fixed_bytes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Strings as a numpy array of fixed-width bytes (None -> b"", which no id equals)."""
    return np.array([b"" if v is None else v.encode() for v in values.to_pylist()], dtype=bytes)


class Router:
    """Which part needs a row, by one column's value: a sorted index of the wanted values (fixed-
    width bytes, ~30 bytes a value) searched with numpy, so a million ids cost tens of MB."""

    def __init__(self, values: pa.Array | pa.ChunkedArray, parts: np.ndarray):
        keys = _fixed_bytes(values)
        wanted = keys != b""
        order = np.argsort(keys[wanted], kind="stable")
        self.keys = keys[wanted][order]
        self.parts = np.asarray(parts)[wanted][order]
        self.positions = np.flatnonzero(wanted)[order]  # row of `values` each sorted key came from

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(part, position in the routed values) of every value of `column`; part -1: no part needs it."""
        probe = _fixed_bytes(column)
        if not len(self.keys):
            return np.full(len(probe), -1, np.int32), np.full(len(probe), -1, np.int64)
        at = np.searchsorted(self.keys, probe).clip(0, len(self.keys) - 1)
        found = (self.keys[at] == probe) & (probe != b"")
        return np.where(found, self.parts[at], -1).astype(np.int32), np.where(found, self.positions[at], -1)


# ---- the staging folder -------------------------------------------------------------------------
@dataclass(frozen=True)
class StagedPart:
    """Where one part's inputs are (picklable: a worker, local or on Ray, reads them itself)."""

    run_root: str
    folder: str  # relative to the run
    index: int
    batches: dict[str, list[int]] = field(default_factory=dict)  # table -> its record batches of this part

    def rows(self) -> "PartRows":
        from pipelines.rundir import RunDir

        return PartRows(RunDir(self.run_root), self.folder, self.batches)


class PartRows:
    """The rows of one part, table by table, read from the staging folder."""

    def __init__(self, run_dir: "RunDir", folder: str, batches: dict[str, list[int]]):
        self.run_dir, self.folder, self.batches = run_dir, folder, batches

    def has(self, table: str) -> bool:
        return table in self.batches

    def table(self, name: str) -> pa.Table | None:
        """The part's rows of a staged table (None: the run has no such table)."""
        if name not in self.batches:
            return None
        with self.run_dir.fs.open_input_file(self.run_dir.path(self.folder, f"{name}.arrow")) as fh:
            reader = pa.ipc.open_file(fh)
            return pa.Table.from_batches([reader.get_batch(i) for i in self.batches[name]], schema=reader.schema)

    def rows(self, name: str) -> list[dict]:
        data = self.table(name)
        return data.to_pylist() if data is not None else []


class Staging:
    """The staging folder of one stage run: <run>/_staging/<output table>/<table>.arrow."""

    def __init__(self, run_dir: "RunDir", output_table: str, parts: int):
        self.run_dir = run_dir
        self.folder = posixpath.join(STAGING, output_table)
        self.parts = parts
        self.batches: dict[str, list[list[int]]] = {}  # table -> part -> batch numbers
        self.remove()

    def remove(self) -> None:
        """Delete this stage's staging folder (and the staging root, once empty)."""
        import pyarrow.fs as pafs

        fs = self.run_dir.fs
        for folder in (self.folder, STAGING):
            path = self.run_dir.path(folder)
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                continue
            if folder == STAGING and fs.get_file_info(pafs.FileSelector(path)):
                continue  # another stage's staging: not ours to remove
            fs.delete_dir(path)

    def part(self, index: int) -> StagedPart:
        return StagedPart(self.run_dir.uri, self.folder, index, {t: parts[index] for t, parts in self.batches.items()})

    def rows(self, index: int) -> PartRows:
        return PartRows(self.run_dir, self.folder, self.part(index).batches)

    def route(self, table: str, router: Router, on: str, columns: list[str] | None = None) -> int:
        """Write the rows of `table` that a part needs (looked up by column `on`), in table order;
        returns the number of rows routed. Reads one source part at a time."""
        if not self.run_dir.has_table(table):
            return 0
        wanted = columns if columns is None or on in columns else [*columns, on]
        with self.writer(table) as out:
            for path in self.run_dir.part_files(table):
                data = self.run_dir.read_part(path, wanted)
                parts, _ = router.lookup(data[on])
                out.add(data.select(columns) if columns is not None else data, parts)
            return out.rows

    def write(self, name: str, tables: Iterable[tuple[int, pa.Table]]) -> None:
        """A table the stage computes per part (e.g. the export's decisions): (part, rows) pairs."""
        with self.writer(name) as out:
            for index, data in tables:
                out.add(data, np.full(data.num_rows, index, np.int32))

    def writer(self, name: str) -> "_PartBatchWriter":
        return _PartBatchWriter(self, name)


class _PartBatchWriter:
    """Appends rows to <folder>/<name>.arrow grouped by part: rows are buffered per part (at most
    ROUTE_BUFFER_BYTES in all) and written as one record batch per part and flush."""

    def __init__(self, staging: Staging, name: str):
        self.staging, self.name = staging, name
        self.path = staging.run_dir.path(staging.folder, f"{name}.arrow")
        self.buffers: dict[int, list[pa.Table]] = {}
        self.buffered = 0
        self.batches: list[list[int]] = [[] for _ in range(staging.parts)]
        self.written = 0
        self.rows = 0
        self.sink = self.ipc = None

    def __enter__(self) -> "_PartBatchWriter":
        return self

    def add(self, data: pa.Table, parts: np.ndarray) -> None:
        order = np.argsort(parts, kind="stable")  # keeps the table's order within each part
        ordered = parts[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.array([], np.int64)
        for start, end in zip(starts, [*starts[1:], len(ordered)]):
            part = int(ordered[start])
            if part < 0:
                continue
            piece = data.take(pa.array(order[start:end]))
            self.buffers.setdefault(part, []).append(piece)
            self.buffered += piece.nbytes
            self.rows += piece.num_rows
        if self.sink is None:
            self._open(data.schema)
        if self.buffered >= ROUTE_BUFFER_BYTES:
            self.flush()

    def _open(self, schema: pa.Schema) -> None:
        from curation.storage import ensure_parent

        ensure_parent(self.staging.run_dir.fs, self.path)
        self.sink = self.staging.run_dir.fs.open_output_stream(self.path)
        self.ipc = pa.ipc.new_file(self.sink, schema, options=IPC_OPTIONS)

    def flush(self) -> None:
        for part in sorted(self.buffers):
            batch = pa.concat_tables(self.buffers[part]).combine_chunks()
            for piece in batch.to_batches():
                self.ipc.write_batch(piece)
                self.batches[part].append(self.written)
                self.written += 1
        self.buffers, self.buffered = {}, 0

    def __exit__(self, exc_type, *exc) -> None:
        if self.sink is None:
            return  # nothing was routed: the table is absent for the parts
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.ipc.close()
            self.sink.close()
        if exc_type is None:
            self.staging.batches[self.name] = self.batches


# ---- what a stage declares ----------------------------------------------------------------------
@dataclass(frozen=True)
class Join:
    """Rows of another table a part needs: those whose column `on` (a column of the input table
    too: the item's group, its window, its id...) has a value one of the part's items has."""

    table: str
    on: str
    columns: tuple[str, ...] | None = None  # None: every column


@dataclass(frozen=True)
class PartInputs:
    """A stage's inputs read part by part (the module doc). Used as the stage's `load_inputs`:
    calling it gives the `StreamedInputs` the runner plans, stages and hands out."""

    table: str  # the input table: one item per row with status "ok"
    key: str  # the item id (parts are named from it)
    group: str  # items with the same value stay in one part (their joins need the same rows)
    build: Callable[[PartRows, "StageParams"], list[dict]]  # a part's records from its rows
    columns: tuple[str, ...] | None = None  # of the input table (None: every column)
    joins: tuple[Join, ...] = ()  # tables the run does not have are skipped
    # Corpus-wide work between routing and the parts (compact state, or tables written per part
    # with `Staging.write`), when `prepare_when(params)`: then every part is staged, done or not.
    prepare: Callable[["RunDir", "StageParams", Staging, list[int]], None] | None = None
    prepare_when: Callable[["StageParams"], bool] = lambda params: True

    def __call__(self, run_dir: "RunDir", params: "StageParams") -> "StreamedInputs":
        return StreamedInputs(self, run_dir, params)

    def load(self, staged: StagedPart, params: "StageParams") -> list[dict]:
        """A part's records, in the worker that runs it."""
        with gc_paused():  # a part's rows are many small dicts without cycles
            return self.build(staged.rows(), params)


class StreamedInputs:
    """The inputs of one stage run, before anything but their keys is read."""

    def __init__(self, spec: PartInputs, run_dir: "RunDir", params: "StageParams"):
        self.spec, self.run_dir, self.params = spec, run_dir, params
        self.plan: GroupPlan | None = None
        self.staging: Staging | None = None

    def keys(self) -> pa.Table:
        """Of every item whose row is ok: its key, its group and the columns its joins go by
        (only those columns are read)."""
        spec = self.spec
        columns = list(dict.fromkeys([spec.key, spec.group, *(j.on for j in spec.joins), "status"]))
        if self.run_dir.has_table(spec.table):
            data = self.run_dir.read_table(spec.table, columns)
        else:
            from curation.schemas import TABLES

            data = TABLES[spec.table].empty_table().select(columns)
        return data.filter(pc.equal(data["status"], "ok")).drop_columns(["status"])

    def parts(self, part_size: int) -> list[Part]:
        self.plan = plan_groups(self.keys(), self.spec.key, self.spec.group, part_size)
        sizes = np.diff(self.plan.bounds).tolist() if self.plan.bounds else []
        return [Part(name, size=size) for name, size in zip(self.plan.names, sizes)]

    @property
    def items(self) -> int:
        return self.plan.keys.num_rows if self.plan is not None else 0

    def stage(self, parts: list[Part], pending: list[Part], output_table: str) -> list[Part]:
        """Route the rows the pending parts need (every part's, if the stage has a corpus-wide
        step), run that step, and return the pending parts with where their inputs are."""
        if not pending:
            return []
        index = {p.name: i for i, p in enumerate(parts)}
        corpus_wide = self.spec.prepare is not None and self.spec.prepare_when(self.params)
        staged = list(range(len(parts))) if corpus_wide else [index[p.name] for p in pending]
        self.staging = Staging(self.run_dir, output_table, len(parts))
        with gc_paused():
            self._route(set(staged))
            if corpus_wide:
                self.spec.prepare(self.run_dir, self.params, self.staging, staged)
        return [Part(p.name, size=p.size, staged=self.staging.part(index[p.name])) for p in pending]

    def _route(self, staged: set[int]) -> None:
        plan, spec = self.plan, self.spec
        part_of = plan.part_of_rows()
        keep = np.isin(part_of, np.fromiter(staged, np.int32, len(staged)))
        keys, part_of = plan.keys.filter(pa.array(keep)), part_of[keep]
        routers: dict[str, Router] = {}

        def by(column: str) -> Router:  # one index per column the rows are looked up by
            if column not in routers:
                routers[column] = Router(keys[column], part_of)
            return routers[column]

        self.staging.route(spec.table, by(spec.key), spec.key, list(spec.columns) if spec.columns else None)
        for join in spec.joins:
            self.staging.route(join.table, by(join.on), join.on, list(join.columns) if join.columns else None)

    def close(self) -> None:
        if self.staging is not None:
            self.staging.remove()
            self.staging = None

    def __iter__(self) -> Iterator[dict]:
        """Every record, part by part (for tools and tests; the runner never calls this)."""
        parts = self.parts(5000)
        try:
            for part in self.stage(parts, parts, f"{self.spec.table}-inputs"):
                yield from self.spec.load(part.staged, self.params)
        finally:
            self.close()


def load_part(stage, payload, params: "StageParams") -> list[dict]:
    """The input rows of a part in a worker: the rows themselves, or those of a staged part."""
    if isinstance(payload, StagedPart):
        return stage.load_inputs.load(payload, params)
    return payload
