"""Stages that stream (issue 16): parts of whole videos, each part's inputs joined against only its
own rows, exports written in one ordered pass. A run in small parts gives exactly the rows and the
files of a run in one part; the streamed files are the bytes of the whole-table writers; a resumed
run redoes only the missing parts; and memory stays bounded by the part, not the corpus."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _streaming_fixtures import make_corpus, scale_module

from pipelines.rundir import RunDir
from pipelines.runners.local import LocalRunner
from pipelines.stage import Stage, StageContext
from pipelines.stages import REGISTRY
from pipelines.stages.check import CheckParams
from pipelines.streaming import PartInputs, Router, plan_groups

ROOT = Path(__file__).resolve().parents[1]
NO_VERIFY = {"allow_unchecked": ["answer"]}  # generated chains: no verify stage ran


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> RunDir:
    return make_corpus(tmp_path_factory.mktemp("streaming") / "base", 600)


def run_stage(run: RunDir, name: str, part_size: int, workers: int = 1, **params) -> dict:
    stage = REGISTRY[name]
    p = stage.params_model(**params)
    ctx = StageContext(run=run.name, run_root=run.uri, project_root=ROOT)
    return LocalRunner(workers=workers, part_size=part_size, progress=False).run_stage(stage, p, run, ctx, stage.load_inputs(run, p))


def copy_of(run: RunDir, dest: Path) -> RunDir:
    shutil.copytree(run.root, dest)
    return RunDir(dest)


def table_rows(run: RunDir, table: str) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "run"}, sort_keys=True, default=str) for r in run.read_rows(table))


def export_files(run: RunDir) -> dict[str, str]:
    out = {}
    for path in sorted(run.exports_dir.rglob("*")):
        name = str(path.relative_to(run.exports_dir))
        if path.is_symlink():
            out[name] = "-> " + os.readlink(path)
        elif path.is_file():
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ---- plans and routes ---------------------------------------------------------------------------
def test_parts_hold_whole_groups_and_their_names_do_not_depend_on_row_order():
    keys = pa.table({"chain_id": [f"c{i:03d}" for i in range(20)], "video_id": [f"v{i // 3}" for i in range(19)] + ["v9"]})
    plan = plan_groups(keys, "chain_id", "video_id", 5)
    shuffled = plan_groups(keys.take(np.random.default_rng(1).permutation(20)), "chain_id", "video_id", 5)
    assert plan.names == shuffled.names and plan.bounds == shuffled.bounds
    parts = plan.part_of_rows()
    videos = plan.keys["video_id"].to_pylist()
    assert all(len({parts[i] for i, v in enumerate(videos) if v == video}) == 1 for video in set(videos)), "a video is split"
    assert np.bincount(parts).tolist() == [3, 3, 3, 3, 3, 5], "a video joins a part only while it fits"
    big = plan_groups(pa.table({"chain_id": [f"c{i}" for i in range(7)], "video_id": ["v"] * 7}), "chain_id", "video_id", 3)
    assert big.bounds == [0, 7], "a group larger than a part is a part of its own"


def test_router_finds_the_part_of_every_wanted_value():
    router = Router(pa.array(["b", "a", "c", None]), np.array([1, 0, 2, 5], np.int32))
    parts, positions = router.lookup(pa.array(["a", "c", "zz", None, "b", "aa"]))
    assert parts.tolist() == [0, 2, -1, -1, 1, -1]
    assert positions.tolist() == [1, 2, -1, -1, 0, -1]


def test_the_size_of_one_table_is_summed_from_small_ones():
    """The HF split is sharded by the size one in-memory table of all its rows would have."""
    import random

    from curation.formats.hf import OneChunkSize, hf_features

    rng = random.Random(3)
    schema = hf_features().arrow_schema

    def row():
        return {"chain_id": f"c{rng.random()}", "subset": rng.choice(["a", None]), "video_end": rng.choice([1.5, None]), "human_reviewed": rng.random() < 0.5,
                "thoughts": [{"start": 0.0, "end": 1.0, "text": "t" * rng.randint(0, 9)} for _ in range(rng.randint(0, 4))],
                "options": [str(i) for i in range(rng.randint(0, 3))], "ground_truth": rng.choice([[], ["A"], None]), "sft_record": "s" * rng.randint(10, 50)}  # fmt: skip

    for n, batch in ((2500, 1000), (333, 7), (1, 1000)):
        rows = [row() for _ in range(n)]
        size = OneChunkSize()
        for start in range(0, n, batch):
            size.add(pa.Table.from_pylist(rows[start : start + batch], schema=schema))
        assert size.nbytes == pa.Table.from_pylist(rows, schema=schema).nbytes


# ---- the same rows and files, whatever the part size ---------------------------------------------
@pytest.fixture(scope="module")
def small_and_whole(corpus, tmp_path_factory):
    """The corpus checked and exported in parts of 7 chains (2 worker processes), and in one part."""
    folder = tmp_path_factory.mktemp("parts")
    small, whole = copy_of(corpus, folder / "small" / "run"), copy_of(corpus, folder / "whole" / "run")  # one run name
    for run, size, workers in ((small, 7, 2), (whole, 100_000, 1)):
        run_stage(run, "check", size, workers)
        run_stage(run, "export", size, workers, **NO_VERIFY)
    return small, whole


def test_small_parts_give_the_verdicts_and_decisions_of_one_part(small_and_whole):
    small, whole = small_and_whole
    assert len(small.read_plan("verdicts")["parts"]) > 50 and len(whole.read_plan("verdicts")["parts"]) == 1
    for table in ("verdicts", "export_decisions"):
        assert table_rows(small, table) == table_rows(whole, table), f"{table} differs"
    from curation.checks.dedup import find_duplicates

    dups = {v["chain_id"] for v in small.read_rows("verdicts") if v["check"] == "dedup" and v["passed"] is False}
    everything = find_duplicates([c for c in small.read_rows("chains") if c["status"] == "ok"])
    assert dups == set(everything) and len(dups) >= 5, "the repeats of a question about its video are found, in whatever part"
    decisions = {d["chain_id"]: d for d in small.read_rows("export_decisions")}
    assert any(d["excluded_by"] == ["review:reject"] for d in decisions.values())
    assert not any(c.startswith("ch-failed") for c in decisions)
    assert not (small.root / "_staging").exists(), "the staging folder is removed when the stage ends"


def test_small_parts_give_the_export_files_of_one_part_byte_for_byte(small_and_whole):
    small, whole = small_and_whole
    files = export_files(small)
    assert files == export_files(whole)
    assert {"sft/multiple_choice_with_seeks.jsonl", "rl/train.parquet", "hf/dataset_dict.json", "manifest.json"} <= set(files)


def test_inputs_of_judge_and_verify_do_not_depend_on_the_part_size(corpus):
    for name in ("judge", "verify"):
        stage = REGISTRY[name]
        params = stage.params_model()
        got = []
        for size in (7, 100_000):
            inputs = stage.load_inputs(corpus, params)
            parts = inputs.parts(size)
            try:
                records = [r for p in inputs.stage(parts, parts, f"test-{name}") for r in inputs.spec.load(p.staged, params)]
            finally:
                inputs.close()
            got.append(sorted(json.dumps(r, sort_keys=True, default=str) for r in records))
        assert got[0] == got[1] and len(got[0]) == 600 + 10


def test_corpus_wide_dedup_keeps_compact_signatures_and_finds_what_one_pass_finds(corpus, tmp_path):
    from curation.checks.dedup import DedupConfig, find_duplicates

    from curation.schemas import CHAINS, to_table

    run = copy_of(corpus, tmp_path / "corpus-dedup")
    rows = [c for c in run.read_rows("chains") if c["status"] == "ok"]
    # the question of a chain of one video, asked again about three other videos
    asked_again = [{**c, "chain_id": f"ch-zy{i}", "question_id": f"q-zy{i}", "qa": rows[0]["qa"]} for i, c in enumerate(rows[-3:])]
    run.write_part("chains", "part-99998-again", to_table(asked_again, CHAINS))
    run_stage(run, "check", 7, checks=["dedup"], dedup={"scope": "corpus"})
    failed = {v["chain_id"] for v in run.read_rows("verdicts") if v["check"] == "dedup" and v["passed"] is False}
    assert failed == set(find_duplicates(rows + asked_again, DedupConfig(scope="corpus")))
    assert {"ch-zy0", "ch-zy1", "ch-zy2"} <= failed and not {"ch-zy0", "ch-zy1", "ch-zy2"} & set(find_duplicates(rows + asked_again))


def test_a_resumed_stage_redoes_only_its_missing_parts(small_and_whole, tmp_path):
    small, _ = small_and_whole
    run = copy_of(small, tmp_path / "resumed" / "run")
    parts = sorted(run.existing_parts("verdicts"))
    for part in parts[::3]:
        run.part_path("verdicts", part).unlink()
    run.success_path("verdicts").unlink()
    summary = run_stage(run, "check", 7)
    assert summary["parts_computed"] == len(parts[::3]) and summary["parts"] == len(parts)
    assert table_rows(run, "verdicts") == table_rows(small, "verdicts")


def _crash_on_one_chain(records, params, ctx):
    out = []
    for record in records:
        if record["chain_id"] == os.environ.get("VSTW_TEST_CRASH_CHAIN"):
            os._exit(139)  # what a segfault looks like from outside
        out.append({"chain_id": record["chain_id"], "check": "seen", "passed": True})
    return out


CRASHY = Stage(
    name="crashy", output_table="verdicts", fn=_crash_on_one_chain, params_model=CheckParams, key="chain_id", input_table="chains",
    kind="cpu", ref="test_streaming:CRASHY", failed_row=lambda record, reason, msg: {"chain_id": record.get("chain_id"), "check": "all", "status": "failed", "reason": reason, "error": msg},
    load_inputs=PartInputs(table="chains", key="chain_id", group="video_id", build=lambda rows, params: rows.rows("chains")),
)  # fmt: skip


def test_a_crashing_chain_of_a_streamed_part_fails_alone(corpus, tmp_path, monkeypatch):
    run = copy_of(corpus, tmp_path / "crash")
    victim = sorted(c["chain_id"] for c in corpus.read_rows("chains") if c["status"] == "ok")[100]
    monkeypatch.setenv("VSTW_TEST_CRASH_CHAIN", victim)
    ctx = StageContext(run=run.name, run_root=run.uri, project_root=ROOT)
    summary = LocalRunner(workers=2, part_size=7, progress=False).run_stage(CRASHY, CheckParams(), run, ctx, CRASHY.load_inputs(run, CheckParams()))
    rows = {r["chain_id"]: r for r in run.read_rows("verdicts")}
    assert rows[victim]["reason"] == "worker_crashed" and summary["failed_by_reason"] == {"worker_crashed": 1}
    assert len(rows) == 610 and all(r["check"] == "seen" for c, r in rows.items() if c != victim)


# ---- the streamed files are the whole-table writers' bytes -----------------------------------------
def whole_table_exports(run: RunDir, root: Path, row_group: int) -> None:
    """The export's files as the whole-table writers make them from all rows at once (the code
    before issue 16): the reference the streamed writers must equal byte for byte."""
    from curation.formats.hf import build_dataset_dict, hf_row
    from curation.formats.rl import rl_table
    from curation.formats.sft import write_sft
    from pipelines.stages.export_files import provenance

    rows = run.read_rows("export_decisions")
    ok = sorted((r for r in rows if r["status"] == "ok" and r["exported"]), key=lambda r: (r["subset"], r["chain_id"]))
    by_subset: dict[str, list[dict]] = {}
    for r in ok:
        r["prov"] = provenance(r, run.name) | {"subset": r["subset"], "video_id": r["video_id"], "duration_s": r["duration_s"], "qa_type": r["qa_type"], "options": r["options"]}
        by_subset.setdefault(r["subset"], []).append(r)
    (root / "sft").mkdir(parents=True)
    (root / "rl").mkdir()
    for subset, subset_rows in by_subset.items():
        write_sft([r["sft_record"] for r in subset_rows], root / "sft" / f"{subset}_with_seeks.jsonl")
        (root / "sft" / f"{subset}_provenance.jsonl").write_bytes("".join(json.dumps({"line": i, **r["prov"]}, ensure_ascii=False) + "\n" for i, r in enumerate(subset_rows)).encode())
    rl = [r for r in ok if r["rl_row"]]
    pq.write_table(rl_table([json.loads(r["rl_row"]) for r in rl]), root / "rl" / "train.parquet", compression="zstd", row_group_size=row_group)
    prov = [{"index": i, **{k: v for k, v in r["prov"].items() if k != "prompt_versions"}, "prompt_versions": json.dumps(r["prov"]["prompt_versions"], sort_keys=True)} for i, r in enumerate(rl)]
    pq.write_table(pa.Table.from_pylist(prov), root / "rl" / "train_provenance.parquet", compression="zstd", row_group_size=row_group)
    hf = {s: [hf_row(r["sft_record"], json.loads(r["rl_row"]) if r["rl_row"] else None, r["prov"]) for r in subset_rows] for s, subset_rows in by_subset.items()}
    build_dataset_dict(hf).save_to_disk(str(root / "hf"))


def test_streamed_files_are_the_bytes_of_the_whole_table_writers(small_and_whole, tmp_path, monkeypatch):
    """Also past one Parquet row group and one HF shard (both made small here)."""
    import datasets

    import curation.formats.parquet as parquet_module
    from pipelines.stages.export import ExportParams, write_exports

    small, _ = small_and_whole
    run = copy_of(small, tmp_path / "bytes" / "run")
    monkeypatch.setattr(parquet_module, "ROW_GROUP_ROWS", 97)
    monkeypatch.setattr(datasets.config, "MAX_SHARD_SIZE", "150KB")
    shutil.rmtree(run.exports_dir)
    write_exports(run, ExportParams(**NO_VERIFY))
    whole_table_exports(run, tmp_path / "reference", row_group=97)
    reference = tmp_path / "reference"
    compared = 0
    for path in sorted(p for p in reference.rglob("*") if p.is_file()):
        name = path.relative_to(reference)
        ours = run.exports_dir / name
        if name.name == "state.json":  # the fingerprint: a hash of the data here, of a pickled table there
            a, b = json.loads(ours.read_text()), json.loads(path.read_text())
            assert {k: v for k, v in a.items() if k != "_fingerprint"} == {k: v for k, v in b.items() if k != "_fingerprint"}
            continue
        if name.name == "README.md":
            continue  # the dataset card is the export's own (statistics, policy notes)
        assert ours.read_bytes() == path.read_bytes(), f"{name} differs"
        compared += 1
    assert len(pq.ParquetFile(run.exports_dir / "rl" / "train.parquet").metadata.to_dict()["row_groups"]) > 1
    assert any(len(json.loads((d / "state.json").read_text())["_data_files"]) > 1 for d in (run.exports_dir / "hf").iterdir() if d.is_dir())
    assert compared >= 12


# ---- memory: bounded by the part, not the corpus ------------------------------------------------------
MEMORY_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pipelines.rundir import RunDir
run = RunDir(sys.argv[2])
if sys.argv[3] == "whole":  # what a stage that reads its input tables whole holds first
    held = [run.read_rows(t) for t in ("chains", "graphs", "captions", "clips")]
else:
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages import REGISTRY
    ctx = StageContext(run=run.name, run_root=run.uri, project_root=Path(sys.argv[1]))
    # the cheap rule checks (the text checks cost CPU, not memory); the export lets the others be
    for name, params in (("check", {"checks": ["structure", "qa", "dedup"]}), ("export", {"allow_unchecked": ["answer", "thoughts", "causality", "grounding"]})):
        stage = REGISTRY[name]
        p = stage.params_model(**params)
        LocalRunner(workers=1, part_size=1000, progress=False).run_stage(stage, p, run, ctx, stage.load_inputs(run, p))
    print(json.dumps(json.loads((run.root / "exports" / "manifest.json").read_text())["records"]))
"""


def peak_rss_mb(args: list[str]) -> tuple[float, str]:
    import psutil

    child = subprocess.Popen([sys.executable, "-c", MEMORY_CHILD, *args], stdout=subprocess.PIPE, text=True)
    proc, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    assert child.returncode == 0
    return peak / 2**20, child.stdout.read()


def test_check_and_export_of_50k_chains_stay_under_what_a_whole_table_holds(tmp_path):
    scale_module().generate(tmp_path / "big", 50_000)
    streamed, out = peak_rss_mb([str(ROOT), str(tmp_path / "big"), "stream"])
    assert json.loads(out.strip().splitlines()[-1]) == 50_000
    whole, _ = peak_rss_mb([str(ROOT), str(tmp_path / "big"), "whole"])
    print(f"check + export, parts of 1,000: {streamed:.0f} MB; the input tables read whole: {whole:.0f} MB")
    assert streamed < 900, f"check + export of 50k chains peaked at {streamed:.0f} MB"
    assert whole > 1.5 * streamed, "reading the tables whole should cost more than streaming them"
