"""The DuckDB catalog (pipelines/catalog.py) and `vstw sql` / `vstw catalog`.

Counts through the views are checked against independent counts made with pyarrow on the same
Parquet parts; the CLI runs as a child process (exit codes and stderr as a user sees them).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _corpus_fixtures import PROJECT, copy_run, full_corpus_template, make_home, vstw
from curation.schemas import TABLES
from pipelines.catalog import ANSWER_LETTER_SQL, CatalogError, build_catalog_file, open_all_runs, open_run
from pipelines.stats import read_cookbook

COOKBOOK = read_cookbook(PROJECT / "docs" / "sql-cookbook.md")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return full_corpus_template(str(tmp_path_factory.getbasetemp() / "corpus-cache"))


@pytest.fixture()
def runs(tmp_path, template) -> Path:
    """A runs folder holding one full run named like the template (so `run` columns agree)."""
    folder = tmp_path / "runs"
    copy_run(template, folder / template.name)
    return folder


def arrow_rows(run_root: Path, table: str) -> pa.Table:
    files = sorted((run_root / table).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else TABLES[table].empty_table()


def n_thoughts(run_root: Path) -> int:
    return sum(len(c["thoughts"] or []) for c in arrow_rows(run_root, "chains").to_pylist())


# ---- views ------------------------------------------------------------------------------------
def test_every_table_view_counts_the_rows_of_its_parts(runs):
    run_root = next(runs.iterdir())
    with open_run(run_root) as cat:
        for table in TABLES:
            expected = arrow_rows(run_root, table)
            assert cat.one(f'SELECT count(*) FROM "{table}"')[0] == expected.num_rows, table
            if expected.num_rows:
                failed = sum(1 for s in expected.column("status").to_pylist() if s == "failed")
                assert cat.one(f"SELECT count(*) FROM \"{table}\" WHERE status = 'failed'")[0] == failed, table
        assert cat.has("chains") and cat.has("verdicts") and not cat.empty


def test_thoughts_view_has_one_row_per_thought_in_order(runs):
    run_root = next(runs.iterdir())
    chains = arrow_rows(run_root, "chains").to_pylist()
    expected = [(c["chain_id"], i, t["text"], t["start_s"] - c["start_s"]) for c in chains for i, t in enumerate(c["thoughts"] or [])]
    with open_run(run_root) as cat:
        got = cat.rows("SELECT chain_id, thought_index, text, offset_s, n_chars FROM thoughts ORDER BY chain_id, thought_index")
    assert [(c, i, t) for c, i, t, _, _ in got] == sorted((c, i, t) for c, i, t, _ in expected)
    assert all(n == len(t) for _, _, t, _, n in got)
    assert {round(o, 6) for *_, o, _ in got} == {round(o, 6) for *_, o in expected}
    assert len(expected) > 50  # the corpus really has thoughts


def test_qa_view_flattens_the_question_and_reads_the_answer_letter(runs):
    run_root = next(runs.iterdir())
    chains = [c for c in arrow_rows(run_root, "chains").to_pylist() if c["qa"]]
    with open_run(run_root) as cat:
        got = {r[0]: r[1:] for r in cat.rows("SELECT chain_id, type, n_options, answer, answer_letter FROM qa")}
        letters = cat.rows(
            f"SELECT x, {ANSWER_LETTER_SQL.format(a='x')} "
            "FROM (VALUES ('\\boxed{B}'), ('C.'), ('The answer is \\boxed{D}. A'), ('none'), ('')) t(x)"
        )
    for c in chains:
        qa = c["qa"]
        letter = qa["answer"] if qa["type"] == "multiple_choice" else None
        assert got[c["chain_id"]] == (qa["type"], len(qa["options"]), qa["answer"], letter)
    assert dict(letters) == {"\\boxed{B}": "B", "C.": "C", "The answer is \\boxed{D}. A": "D", "none": None, "": None}


def test_a_table_with_no_parts_is_an_empty_view_with_the_schema_columns(tmp_path, template):
    run_root = tmp_path / "runs" / template.name
    shutil.copytree(template / "videos", run_root / "videos")
    with open_run(run_root) as cat:
        for table, schema in TABLES.items():
            described = cat.rows(f'DESCRIBE "{table}"')
            assert [r[0] for r in described] == schema.names, table
            if table != "videos":
                assert cat.one(f'SELECT count(*) FROM "{table}"')[0] == 0
                # the same types DuckDB gives a real Parquet file of that schema
                reference = tmp_path / f"{table}.parquet"
                pq.write_table(schema.empty_table(), reference)
                assert [r[1] for r in described] == [r[1] for r in cat.rows(f"DESCRIBE SELECT * FROM '{reference}'")], table
        # the derived views work (and are empty) too
        assert cat.rows("SELECT count(*) FROM thoughts") == [(0,)]
        assert cat.rows("SELECT count(*) FROM qa") == [(0,)]


def test_half_written_run_ignores_temp_files_and_reads_old_parts_missing_new_columns(tmp_path, template):
    run_root = tmp_path / "runs" / template.name
    shutil.copytree(template, run_root)
    shutil.rmtree(run_root / "verdicts")  # a stage not run yet
    # A part being written when the run was killed: never part-*.parquet, never read.
    (run_root / "chains" / ".tmp-abc123.parquet").write_bytes(b"PAR1 half a file")
    # A part written before a column was added to the schema.
    old = pq.read_table(sorted((run_root / "clips").glob("part-*.parquet"))[0]).drop_columns(["boundary", "vst_frame_indices"])
    pq.write_table(old, run_root / "clips" / "part-99999-old.parquet")
    with open_run(run_root) as cat:
        assert cat.one("SELECT count(*) FROM chains")[0] == arrow_rows(template, "chains").num_rows
        assert cat.one("SELECT count(*) FROM verdicts")[0] == 0
        assert cat.tables["clips"].missing_columns == []
        n_old = old.num_rows
        assert cat.one("SELECT count(*) FROM clips WHERE boundary IS NULL")[0] == n_old
        assert cat.one("SELECT count(*) FROM clips")[0] == arrow_rows(template, "clips").num_rows + n_old
    # Every part lacking a column: the view still has it, as NULL.
    only_old = tmp_path / "runs2" / "old"
    (only_old / "clips").mkdir(parents=True)
    pq.write_table(old, only_old / "clips" / "part-00000-old.parquet")
    with open_run(only_old) as cat:
        assert cat.tables["clips"].missing_columns == ["boundary", "vst_frame_indices"]
        assert cat.rows("SELECT count(*), count(boundary) FROM clips") == [(n_old, 0)]


def test_an_unreadable_part_is_a_clear_error_naming_the_table(tmp_path, template):
    run_root = tmp_path / "runs" / template.name
    shutil.copytree(template, run_root)
    (run_root / "verdicts" / "part-77777-broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CatalogError, match=r"table 'verdicts'.*part"):
        open_run(run_root)
    proc = vstw(["sql", "SELECT 1", "--run", template.name], tmp_path / "runs")
    assert proc.returncode != 0
    assert "verdicts" in proc.stderr and "Traceback" not in proc.stderr


def test_all_runs_scope_reads_every_run(tmp_path, template):
    runs = tmp_path / "runs"
    copy_run(template, runs / template.name)
    copy_run(template, runs / "second")
    with open_all_runs(runs) as cat:
        n = arrow_rows(template, "chains").num_rows
        assert cat.one("SELECT count(*) FROM chains")[0] == 2 * n
        assert cat.rows("SELECT run, count(*) FROM thoughts GROUP BY run ORDER BY run") == [(template.name, n_thoughts(template)), ("second", n_thoughts(template))]


# ---- the persistent catalog -------------------------------------------------------------------
def test_catalog_file_is_usable_from_another_duckdb_client(runs, tmp_path):
    path = tmp_path / "data" / "catalog.duckdb"
    infos = build_catalog_file(runs, path)
    assert infos["chains"].parts > 0
    assert not list(path.parent.glob("*.tmp-*"))
    code = (
        "import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(json.dumps({v: con.sql(f'SELECT count(*) FROM {v}').fetchall()[0][0] for v in ['videos', 'chains', 'thoughts', 'qa', 'verdicts']}))"
    )
    # A separate process, as a user's DuckDB client would be.
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    counts = json.loads(out)
    run_root = next(runs.iterdir())
    assert counts["chains"] == arrow_rows(run_root, "chains").num_rows
    assert counts["verdicts"] == arrow_rows(run_root, "verdicts").num_rows
    assert counts["thoughts"] == sum(len(c["thoughts"] or []) for c in arrow_rows(run_root, "chains").to_pylist())
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM catalog_info WHERE parts > 0").fetchall()[0][0] >= 6


def test_vstw_catalog_and_sql_refresh_the_projects_catalog(tmp_path, template):
    home = make_home(tmp_path / "home")
    runs = home / "data" / "runs"
    copy_run(template, runs / template.name)
    proc = vstw(["catalog"], runs, home)
    assert proc.returncode == 0, proc.stderr
    catalog = home / "data" / "catalog.duckdb"
    assert catalog.exists() and "duckdb" in proc.stdout
    # A second run appears; `vstw sql` refreshes the catalog so the file sees it too.
    copy_run(template, runs / "second")
    proc = vstw(["sql", "SELECT count(DISTINCT run) AS runs FROM chains", "--format", "csv"], runs, home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["runs", "2"]
    with duckdb.connect(str(catalog), read_only=True) as con:
        assert con.sql("SELECT count(DISTINCT run) FROM chains").fetchall() == [(2,)]


# ---- vstw sql ---------------------------------------------------------------------------------
def test_vstw_sql_formats(runs, tmp_path):
    run_root = next(runs.iterdir())
    chains = arrow_rows(run_root, "chains")
    query = "SELECT chain_id, status, qa FROM chains ORDER BY chain_id"

    table = vstw(["sql", "SELECT count(*) AS n FROM chains", "--run", run_root.name], runs)
    assert table.returncode == 0, table.stderr
    assert str(chains.num_rows) in table.stdout and "1 row(s)" in table.stdout

    as_csv = vstw(["sql", query, "--format", "csv"], runs)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["chain_id"] for r in rows] == sorted(chains.column("chain_id").to_pylist())

    as_json = vstw(["sql", query, "--format", "json"], runs)
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    by_id = {c["chain_id"]: c for c in chains.to_pylist()}
    assert len(records) == chains.num_rows
    for r in records:
        assert r["status"] == by_id[r["chain_id"]]["status"]
        if r["qa"] is not None:
            assert r["qa"]["answer"] == by_id[r["chain_id"]]["qa"]["answer"]

    out = tmp_path / "out" / "thoughts.parquet"
    as_parquet = vstw(["sql", "FROM thoughts", "--format", "parquet", "--out", str(out)], runs)
    assert as_parquet.returncode == 0, as_parquet.stderr
    written = pq.read_table(out)
    assert written.num_rows == sum(len(c["thoughts"] or []) for c in chains.to_pylist())
    assert "text" in written.column_names


def test_vstw_sql_reads_the_query_from_stdin(runs):
    exe = Path(sys.executable).with_name("vstw")
    from _corpus_fixtures import vstw_env

    proc = subprocess.run([str(exe), "sql", "-", "--format", "csv"], input="SELECT 40 + 2 AS answer", env=vstw_env(runs), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["answer", "42"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sql", "SELECT * FROM chainz"], r"SQL error: .*chainz"),
        (["sql", "SELEKT 1"], r"SQL error: Parser Error"),
        (["sql", "SELECT 1", "--format", "parquet"], r"--format parquet needs --out"),
        (["sql", "SELECT 1", "--run", "no-such-run"], r"no run named 'no-such-run'"),
        (["sql", "  "], r"empty SQL query"),
    ],
)
def test_vstw_sql_bad_input_is_a_clear_message_without_traceback(runs, args, message):
    proc = vstw(args, runs)
    assert proc.returncode != 0
    assert re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_vstw_sql_on_a_run_with_no_tables_yet(tmp_path):
    runs = tmp_path / "runs"
    (runs / "fresh").mkdir(parents=True)
    (runs / "fresh" / "recipe.yaml").write_text("recipe: {}\n")
    for args in (["sql", "SELECT 1", "--run", "fresh"], ["sql", "SELECT 1"], ["stats", "fresh"]):
        proc = vstw(args, runs)
        assert proc.returncode != 0, args
        assert "no tables yet" in proc.stderr and "Traceback" not in proc.stderr
    proc = vstw(["sql", "SELECT 1"], tmp_path / "nowhere")
    assert proc.returncode != 0 and "no runs folder" in proc.stderr


# ---- the cookbook -----------------------------------------------------------------------------
def test_the_cookbook_has_a_dozen_questions():
    assert len(COOKBOOK) >= 12


@pytest.fixture(scope="module")
def cookbook_catalog(template):
    with open_run(template) as cat:
        yield cat


@pytest.mark.parametrize("title", list(COOKBOOK))
def test_every_cookbook_query_runs(cookbook_catalog, title):
    relation = cookbook_catalog.con.sql(COOKBOOK[title])
    assert relation is not None
    relation.to_arrow_table()


def test_cookbook_answers_match_independent_counts(cookbook_catalog, template):
    chains = arrow_rows(template, "chains").to_pylist()
    verdicts = arrow_rows(template, "verdicts").to_pylist()
    reviews = arrow_rows(template, "reviews").to_pylist()
    ok = [c for c in chains if c["status"] == "ok"]

    letters: dict[str, int] = {}
    for c in ok:
        if c["qa"]["type"] == "multiple_choice":
            letters[c["qa"]["answer"]] = letters.get(c["qa"]["answer"], 0) + 1
    got = {r[0]: r[1] for r in cookbook_catalog.rows(COOKBOOK["Answer-letter balance"])}
    assert got == letters

    by_type: dict[str, int] = {}
    for c in ok:
        by_type[c["qa"]["type"]] = by_type.get(c["qa"]["type"], 0) + len(c["thoughts"])
    got = {r[0]: r[1] for r in cookbook_catalog.rows(COOKBOOK["Thought length by QA type"])}
    assert got == by_type

    rejected = {v["chain_id"] for v in verdicts if v["status"] == "failed" or not v["passed"]}
    rejected |= {r["chain_id"] for r in reviews if r["decision"] == "reject"}
    kept: dict[str, int] = {}
    for c in ok:
        if c["chain_id"] not in rejected:
            kept[c["qa"]["type"]] = kept.get(c["qa"]["type"], 0) + 1
    got = {r[0]: r[1] for r in cookbook_catalog.rows(COOKBOOK["Export-ready chains per QA type"])}
    assert got == kept

    lost: dict[str, int] = {}
    for c in chains:
        if c["status"] == "failed" or c["chain_id"] in {v["chain_id"] for v in verdicts if not v["passed"]}:
            lost[c["video_id"]] = lost.get(c["video_id"], 0) + 1
    got = {r[1]: r[4] for r in cookbook_catalog.rows(COOKBOOK["Which videos lost most chains, and why?"])}
    assert got == lost
