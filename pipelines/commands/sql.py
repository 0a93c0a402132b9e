"""vstw sql QUERY [--run RUN | --all] [--format table|csv|json|parquet --out FILE] / vstw catalog

Also the helpers `vstw stats` shares: which runs a command covers, and the refresh of the
persistent catalog (data/catalog.duckdb) that DuckDB clients open.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.commands._util import console, err_console, fail, project_root, resolve_run, runs_root


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def catalog_path() -> Path:
    return project_root() / "data" / "catalog.duckdb"


def known_runs() -> list[str]:
    root = runs_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def open_cli_catalog(run: str | None, all_runs: bool):
    """The catalog of one run (a name or a folder) or of all runs; a clear exit when there is
    nothing to query yet or a table cannot be read."""
    from pipelines.catalog import CatalogError, all_runs_scope, open_catalog, run_scope

    if run and all_runs:
        fail("give either a run or --all, not both")
    if run:
        scope = run_scope(resolve_run(run, local=True))
    else:
        if not runs_root().is_dir():
            fail(f"no runs folder at {runs_root()}; make a run first: vstw run pipelines/recipes/demo.yaml --run NAME")
        scope = all_runs_scope(runs_root())
    try:
        cat = open_catalog(scope)
    except CatalogError as err:
        fail(str(err))
    if cat.empty:
        cat.close()
        where = scope.roots[0]
        fail(f"{scope.label} has no tables yet (no part-*.parquet under {where}); a run writes them: vstw run RECIPE --run NAME")
    return cat


def refresh_persistent_catalog(quiet: bool = True) -> Path | None:
    """Rebuild data/catalog.duckdb when the runs folder is the project's own (a VSTW_RUNS
    elsewhere must not repoint the project's catalog). Never fails the command that asked."""
    from pipelines.catalog import build_catalog_file

    if runs_root() != (project_root() / "data" / "runs").resolve() or not runs_root().is_dir():
        return None
    try:
        build_catalog_file(runs_root(), catalog_path())
        return catalog_path()
    except Exception as err:  # a locked or unwritable file: the query result matters more
        if not quiet:
            err_console.print(f"[dim]note: {catalog_path()} not refreshed: {str(err).splitlines()[0]}[/]")
        return None


def read_query(query: str) -> str:
    if query == "-":
        query = sys.stdin.read()
    if not query.strip():
        fail("empty SQL query")
    return query


def cell(value, width: int = 80) -> str:
    """A value as rich markup: long texts cut, NULL shown as such."""
    if value is None:
        return "[dim]NULL[/]"
    text = str(value)
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def print_table(result, limit: int) -> None:
    """Rows as a table; one block per row (column | value) when the columns don't fit the terminal."""
    head = result.slice(0, limit)
    columns = [head.column(i).to_pylist() for i in range(head.num_columns)]  # by position: names may repeat
    widths = [min(max([len(name)] + [len(str(v)) for v in col]), 40) + 3 for name, col in zip(result.column_names, columns)]
    if sum(widths) <= console.width:
        table = Table(header_style="bold")
        for name in result.column_names:
            table.add_column(name, overflow="fold")
        for row in zip(*columns):
            table.add_row(*(cell(v) for v in row))
        console.print(table)
    else:
        for i, row in enumerate(zip(*columns)):
            block = Table(title=f"row {i + 1}", title_justify="left", show_header=False)
            block.add_column(style="bold")
            block.add_column(overflow="fold")
            for name, value in zip(result.column_names, row):
                block.add_row(escape(name), cell(value, width=400))
            console.print(block)
    shown = head.num_rows
    more = f", showing the first {shown} (--limit N, or --format csv --out FILE for all)" if result.num_rows > shown else ""
    console.print(f"[dim]{result.num_rows:,} row(s){more}[/]")


def write_result(cat, result, fmt: Format, out: Path | None) -> None:
    """csv / json (one object per line) / parquet, through DuckDB (nested columns included)."""
    options = {Format.csv: "FORMAT csv, HEADER true", Format.json: "FORMAT json", Format.parquet: "FORMAT parquet, COMPRESSION zstd"}[fmt]
    cat.con.register("_vstw_result", result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cat.con.execute(f"COPY _vstw_result TO '{str(out).replace(chr(39), chr(39) * 2)}' ({options})")
        err_console.print(f"[dim]{result.num_rows:,} row(s) -> {out}[/]")
        return
    with tempfile.TemporaryDirectory(prefix="vstw-sql-") as tmp:
        path = Path(tmp) / f"result.{fmt.value}"
        cat.con.execute(f"COPY _vstw_result TO '{path}' ({options})")
        with path.open("rb") as fh:
            sys.stdout.flush()
            shutil.copyfileobj(fh, sys.stdout.buffer)
            sys.stdout.buffer.flush()


def register(app: typer.Typer) -> None:
    @app.command("sql")
    def sql_cmd(
        query: str = typer.Argument(..., help='SQL over the views (videos, clips, chains, thoughts, qa, verdicts, ...); "-" reads it from stdin'),
        run: str = typer.Option(None, "--run", help="one run (name or folder); default: all runs"),
        all_runs: bool = typer.Option(False, "--all", help="all runs (the default)"),
        fmt: Format = typer.Option(Format.table, "--format", help="table (terminal), csv, json (one object per line) or parquet"),
        out: Path = typer.Option(None, "--out", help="write the result to this file (required for parquet)"),
        limit: int = typer.Option(100, "--limit", min=1, help="rows shown by --format table"),
    ):
        """Ask the corpus a question in SQL (DuckDB). Views read the run's Parquet parts in place."""
        import duckdb
        import pyarrow as pa

        query = read_query(query)
        if fmt is Format.parquet and out is None:
            fail("--format parquet needs --out FILE (Parquet is not for a terminal)")
        cat = open_cli_catalog(run, all_runs)
        refresh_persistent_catalog()
        try:
            try:
                relation = cat.con.sql(query)  # None for a statement that returns nothing (SET, CREATE ...)
                result = relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.Error as err:
                fail(f"SQL error: {str(err).strip()}\nviews: {', '.join(view_names(cat))}")
            if fmt is Format.table and out is None:
                print_table(result, limit)
            else:
                write_result(cat, result, Format.csv if fmt is Format.table else fmt, out)
        finally:
            cat.close()

    @app.command("catalog")
    def catalog_cmd(out: Path = typer.Option(None, "--out", help="default: data/catalog.duckdb of the project")):
        """(Re)build the persistent DuckDB catalog: the views over all runs, for any DuckDB client."""
        from pipelines.catalog import CatalogError, build_catalog_file

        path = out or catalog_path()
        if not runs_root().is_dir():
            fail(f"no runs folder at {runs_root()}; make a run first: vstw run pipelines/recipes/demo.yaml --run NAME")
        try:
            infos = build_catalog_file(runs_root(), path)
        except CatalogError as err:
            fail(str(err))
        console.print(f"wrote {path}\nviews over {runs_root()}")
        table = Table()
        table.add_column("view")
        table.add_column("parquet parts", justify="right")
        for name, info in infos.items():
            table.add_row(name, str(info.parts) if info.parts else "[dim]none yet: an empty view until the next rebuild[/]")
        table.add_row("thoughts", "[dim]from chains[/]")
        table.add_row("qa", "[dim]from chains[/]")
        console.print(table)
        console.print(f"open it with the duckdb CLI: [bold]duckdb -readonly {path}[/]")
        console.print(f"or in Python: duckdb.connect({str(path)!r}, read_only=True).sql('FROM chains LIMIT 5')", soft_wrap=True)


def view_names(cat) -> list[str]:
    return [r[0] for r in cat.rows("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name")]
