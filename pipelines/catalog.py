"""The DuckDB catalog: SQL views over the Parquet tables of one run or of all runs.

The run folders are the database (docs/architecture.md): the catalog only names them. Each table
of curation/schemas.py becomes a view over `read_parquet('<runs>/<table>/part-*.parquet',
union_by_name=true)`, read in place, never copied. Two derived views make the common questions
short: `thoughts` (one row per thought, unnested from `chains`) and `qa` (one row per chain, its
question flattened, with the answer letter of multiple-choice questions).

A table with no parts yet still gets a view, empty, with the columns of its schema, so SQL written
against a finished run also runs (and returns nothing) against a half-written one. Columns that
the parts on disk lack (written before a column was added to the schema) read as NULL.

`data/catalog.duckdb` holds the same views over all runs, for the duckdb CLI or any DuckDB client.
A DuckDB view binds its files when it is created: a table that had no parts when the catalog was
built stays empty in it until the catalog is rebuilt (`vstw catalog`; `vstw sql` and
`vstw stats` refresh it too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from curation.schemas import TABLES

PART_GLOB = "part-*.parquet"  # what the runner writes; `.tmp-*` files of a running stage never match


class CatalogError(Exception):
    """A table's parts could not be read (the message names the table and the files)."""


# ---- Arrow types -> DuckDB types (for the empty views of tables with no parts yet) ------------
def duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        fields = ", ".join(f"{quote(t.field(i).name)} {duckdb_type(t.field(i).type)}" for i in range(t.num_fields))
        return f"STRUCT({fields})"
    raise TypeError(f"no DuckDB type for Arrow type {t}")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---- what the views cover -----------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """Where the parts of every table are: one run folder, or every run under a runs folder."""

    label: str
    roots: tuple[Path, ...]  # run folders (one) or the runs folder (all)
    all_runs: bool

    def pattern(self, table: str) -> str:
        root = self.roots[0]
        return str(root / "*" / table / PART_GLOB) if self.all_runs else str(root / table / PART_GLOB)

    def files(self, table: str) -> list[Path]:
        root = self.roots[0]
        if self.all_runs:
            return sorted(root.glob(f"*/{table}/{PART_GLOB}"))
        return sorted((root / table).glob(PART_GLOB))


def run_scope(run_root: Path | str) -> Scope:
    root = Path(run_root).resolve()
    return Scope(f"run {root.name}", (root,), all_runs=False)


def all_runs_scope(runs_root: Path | str) -> Scope:
    root = Path(runs_root).resolve()
    return Scope(f"all runs in {root}", (root,), all_runs=True)


# ---- the views --------------------------------------------------------------------------
@dataclass
class TableInfo:
    name: str
    parts: int
    missing_columns: list[str] = field(default_factory=list)


# The letter VST's multiple-choice reward reads from an answer: the first standalone capital
# inside the first \\boxed{...}, else in the whole answer (spec section 3). `{a}`: the answer column.
ANSWER_LETTER_SQL = (
    "nullif(coalesce(nullif(regexp_extract(regexp_extract({a}, '\\\\boxed\\{{([^}}]*)\\}}', 1), '\\b([A-Z])\\b', 1), ''), "
    "regexp_extract({a}, '\\b([A-Z])\\b', 1)), '')"
)

DERIVED_VIEWS: dict[str, str] = {
    # Every verdict of a chain, whichever stage wrote it: `kind` is "rule" (check stage),
    # "answer" (verify stage) or "judge" (the VST-model judge).
    "all_verdicts": """
        SELECT 'rule' AS kind, * FROM verdicts
        UNION ALL BY NAME SELECT 'answer' AS kind, * FROM answer_verdicts
        UNION ALL BY NAME SELECT 'judge' AS kind, * FROM judge_verdicts""",
    # One row per thought, in chain order (thought_index from 0); `offset_s` is the time from the
    # start of the chain's window, `n_chars` the thought's length in characters.
    "thoughts": """
        SELECT run, chain_id, window_id, video_id, status AS chain_status, qa_type,
               thought_index - 1 AS thought_index, n_thoughts,
               t.clip_id, t.start_s, t.end_s, t.text, t.entities,
               t.start_s - window_start_s AS offset_s,
               length(t.text) AS n_chars
        FROM (
            SELECT run, chain_id, window_id, video_id, status, qa.type AS qa_type,
                   start_s AS window_start_s, len(thoughts) AS n_thoughts,
                   unnest(thoughts) AS t, generate_subscripts(thoughts, 1) AS thought_index
            FROM chains
        )""",
    # One row per chain: its question, flattened (cheap: it never reads the thoughts).
    # `answer_letter`: multiple choice only.
    "qa": f"""
        SELECT run, chain_id, window_id, video_id, status, reason,
               qa.type AS type, qa.question AS question, qa.options AS options,
               len(qa.options) AS n_options, qa.answer AS answer,
               CASE WHEN qa.type = 'multiple_choice' THEN {ANSWER_LETTER_SQL.format(a="qa.answer")} END AS answer_letter,
               qa.evidence_clip_ids AS evidence_clip_ids, final_answer, end_s - start_s AS window_s
        FROM chains""",
}


def _table_view_sql(con: duckdb.DuckDBPyConnection, scope: Scope, table: str, schema: pa.Schema | None) -> tuple[str, TableInfo]:
    files = scope.files(table)
    if not files:
        if schema is None:
            raise CatalogError(f"table {table!r} has no parts in {scope.label} and no schema in curation/schemas.py")
        columns = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {quote(f.name)}" for f in schema)
        return f"SELECT {columns} WHERE false", TableInfo(table, 0)
    source = f"read_parquet({sql_string(scope.pattern(table))}, union_by_name = true)"
    try:
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    except duckdb.Error as err:
        raise CatalogError(f"table {table!r} of {scope.label}: cannot read its {len(files)} part(s) ({scope.pattern(table)}): {first_line(err)}") from None
    missing = [f for f in (schema or []) if f.name not in present]
    extra = "".join(f", CAST(NULL AS {duckdb_type(f.type)}) AS {quote(f.name)}" for f in missing)
    return f"SELECT *{extra} FROM {source}", TableInfo(table, len(files), [f.name for f in missing])


def create_views(con: duckdb.DuckDBPyConnection, scope: Scope) -> dict[str, TableInfo]:
    """Create (or replace) one view per table of the scope, plus the derived views."""
    infos: dict[str, TableInfo] = {}
    for table, schema in TABLES.items():
        body, info = _table_view_sql(con, scope, table, schema)
        con.execute(f"CREATE OR REPLACE VIEW {quote(table)} AS {body}")
        infos[table] = info
    for name, body in DERIVED_VIEWS.items():
        if name not in TABLES:  # a real table of that name, if one is added later, wins
            con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {body}")
    return infos


@dataclass
class Catalog:
    """A DuckDB connection with the views of a scope: `con.sql(q)` for a relation (`.df()`,
    `.to_arrow_table()`), `rows(q)` / `one(q)` for tuples, `arrow(q)` for an Arrow table."""

    con: duckdb.DuckDBPyConnection
    scope: Scope
    tables: dict[str, TableInfo]

    def has(self, table: str) -> bool:
        return self.tables.get(table, TableInfo(table, 0)).parts > 0

    @property
    def empty(self) -> bool:
        return not any(info.parts for info in self.tables.values())

    def rows(self, query: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(query, params or []).fetchall()

    def one(self, query: str, params: list | None = None) -> tuple:
        return self.con.execute(query, params or []).fetchone()

    def arrow(self, query: str) -> pa.Table:
        return self.con.sql(query).to_arrow_table()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_catalog(scope: Scope, threads: int | None = None) -> Catalog:
    """An in-memory DuckDB with the scope's views (nothing is copied; queries read the parts)."""
    con = duckdb.connect(":memory:", config={"threads": threads} if threads else {})
    try:
        con.execute("SET enable_progress_bar = false")  # its redraws garble terminals and logs
    except duckdb.Error:
        pass  # in Jupyter without ipywidgets DuckDB refuses the setting: it has no bar to show there
    try:
        tables = create_views(con, scope)
    except BaseException:
        con.close()
        raise
    return Catalog(con, scope, tables)


def open_run(run_root: Path | str) -> Catalog:
    return open_catalog(run_scope(run_root))


def open_all_runs(runs_root: Path | str) -> Catalog:
    return open_catalog(all_runs_scope(runs_root))


# ---- the persistent catalog file -------------------------------------------------------
def build_catalog_file(runs_root: Path | str, path: Path | str) -> dict[str, TableInfo]:
    """Write `path` (e.g. data/catalog.duckdb): the views over all runs, plus `catalog_info`
    (when and from where it was built). Built in a temp file and renamed, so a client holding the
    old file open is never disturbed and a crash never leaves half a catalog."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scope = all_runs_scope(runs_root)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            infos = create_views(con, scope)
            con.execute("CREATE TABLE catalog_info (built_at TIMESTAMPTZ, runs_root VARCHAR, view_name VARCHAR, parts BIGINT)")
            built = datetime.now(timezone.utc)
            con.executemany(
                "INSERT INTO catalog_info VALUES (?, ?, ?, ?)",
                [(built, str(scope.roots[0]), name, info.parts) for name, info in infos.items()],
            )
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return infos


def first_line(err: BaseException) -> str:
    """DuckDB errors carry a multi-line caret diagram; the first lines say what went wrong."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:1]) if lines else type(err).__name__
