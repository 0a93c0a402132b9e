"""The standard report (pipelines/stats.py), `vstw stats` and its HTML report (pipelines/report.py).

Every number is checked against an independent count over the same Parquet parts, made here with
pyarrow + numpy + plain Python (no SQL).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _corpus_fixtures import copy_run, demo_run_template, full_corpus_template, vstw
from curation.schemas import TABLES
from pipelines.catalog import open_run
from pipelines.report import PLOTS, write_html_report
from pipelines.stats import histogram_from_counts, nice_width, plot_data, quantile_from_counts, standard_report


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.getbasetemp() / "corpus-cache")


@pytest.fixture(scope="module")
def full(cache) -> Path:
    return full_corpus_template(cache)


@pytest.fixture(scope="module")
def report(full):
    with open_run(full) as cat:
        yield standard_report(cat)


def rows(run_root: Path, table: str) -> list[dict]:
    files = sorted((run_root / table).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def dist(values) -> dict:
    """n, mean, min, p10, p50, p90, max as the report rounds them (numpy's linear quantiles are
    DuckDB's quantile_cont)."""
    a = np.asarray(values, dtype=float)
    q = np.quantile(a, [0.1, 0.5, 0.9])
    return {"n": len(a), "mean": round(a.mean(), 3), "min": round(a.min(), 3), "p10": round(q[0], 3), "p50": round(q[1], 3), "p90": round(q[2], 3), "max": round(a.max(), 3)}


def measure(report, name: str) -> dict:
    row = report.section("distributions").lookup(measure=name)
    assert row is not None, name
    return {k: v for k, v in row.items() if k != "measure"}


# ---- numbers against independent counts ----------------------------------------------------------
def test_videos_and_hours(report, full):
    videos = rows(full, "videos")
    section = report.section("videos")
    assert section.lookup(status="all")["videos"] == len(videos)
    assert section.lookup(status="all")["hours"] == pytest.approx(round(sum(v["duration_s"] or 0 for v in videos) / 3600, 4))
    ok = [v for v in videos if v["status"] == "ok"]
    assert section.lookup(status="ok")["videos"] == len(ok)


def test_corpus_counts(report, full):
    videos, clips, chains = rows(full, "videos"), rows(full, "clips"), rows(full, "chains")
    verdicts = rows(full, "verdicts")
    metric = {r["metric"]: r["value"] for r in report.section("corpus").as_dicts()}
    ok_clips = [c for c in clips if c["status"] == "ok"]
    ok_chains = [c for c in chains if c["status"] == "ok"]
    rejected = {v["chain_id"] for v in verdicts if v["status"] == "failed" or not v["passed"]}
    assert metric["videos in"] == len(videos)
    assert metric["clips ok"] == len(ok_clips)
    assert metric["windows"] == len({c["window_id"] for c in ok_clips})
    assert metric["chains"] == len(chains)
    assert metric["chains ok"] == len(ok_chains)
    assert metric["chains failed"] == len(chains) - len(ok_chains) > 0
    assert metric["chains kept (ok, no check failed)"] == len([c for c in ok_chains if c["chain_id"] not in rejected])
    n_thoughts = sum(len(c["thoughts"]) for c in ok_chains)
    assert metric["thoughts (in ok chains)"] == n_thoughts
    minutes = sum(c["end_s"] - c["start_s"] for c in ok_chains) / 60
    assert metric["thoughts per minute of video (ok chains)"] == pytest.approx(round(n_thoughts / minutes, 3))


def test_distributions(report, full):
    clips = [c for c in rows(full, "clips") if c["status"] == "ok"]
    chains = [c for c in rows(full, "chains") if c["status"] == "ok"]
    assert measure(report, "clips per video") == pytest.approx(dist(list(Counter(c["video_id"] for c in clips).values())))
    assert measure(report, "clip duration (s)") == pytest.approx(dist([c["end_s"] - c["start_s"] for c in clips]))
    assert measure(report, "clips per window") == pytest.approx(dist(list(Counter(c["window_id"] for c in clips).values())))
    windows: dict[str, list[float]] = {}
    for c in clips:
        windows.setdefault(c["window_id"], []).extend([c["start_s"], c["end_s"]])
    assert measure(report, "window duration (s)") == pytest.approx(dist([max(v) - min(v) for v in windows.values()]))
    assert measure(report, "chains per window") == pytest.approx(dist(list(Counter(c["window_id"] for c in chains).values())))
    assert measure(report, "thoughts per chain") == pytest.approx(dist([len(c["thoughts"]) for c in chains]))
    assert measure(report, "thoughts per minute (per chain)") == pytest.approx(dist([len(c["thoughts"]) / ((c["end_s"] - c["start_s"]) / 60) for c in chains]))
    assert measure(report, "thought length (chars)") == pytest.approx(dist([len(t["text"]) for c in chains for t in c["thoughts"]]))
    assert measure(report, "review lead time (s)") == pytest.approx(dist([r["lead_time_s"] for r in rows(full, "reviews")]))


def test_qa_mix_and_answer_letters(report, full):
    chains = [c for c in rows(full, "chains") if c["status"] == "ok"]
    mix = Counter(c["qa"]["type"] for c in chains)
    got = {r["type"]: r["chains"] for r in report.section("qa_mix").as_dicts()}
    assert got == dict(mix)
    for r in report.section("qa_mix").as_dicts():
        assert r["share"] == pytest.approx(round(mix[r["type"]] / len(chains), 4))

    mc = [c for c in chains if c["qa"]["type"] == "multiple_choice"]
    letters = Counter(c["qa"]["answer"] for c in mc)
    uniform: Counter = Counter()
    for c in mc:
        for i in range(len(c["qa"]["options"])):
            uniform["ABCDEFGH"[i]] += 1 / len(c["qa"]["options"])
    section = report.section("answer_letters").as_dicts()
    assert {r["letter"]: r["chains"] for r in section if r["chains"]} == dict(letters)
    for r in section:
        assert r["share"] == pytest.approx(round(letters[r["letter"]] / len(mc), 4))
        assert r["uniform_share"] == pytest.approx(round(uniform[r["letter"]] / len(mc), 4))


def test_checks_and_rejections(report, full):
    verdicts = rows(full, "verdicts")
    for r in report.section("checks").as_dicts():
        mine = [v for v in verdicts if v["check"] == r["check"]]
        passed = sum(1 for v in mine if v["status"] == "ok" and v["passed"])
        assert (r["verdicts"], r["passed"], r["rejected"]) == (len(mine), passed, len(mine) - passed)
        assert r["pass_rate"] == pytest.approx(round(passed / len(mine), 4))
    expected: Counter = Counter()
    for v in verdicts:
        if v["status"] == "ok" and not v["passed"]:
            expected[(f"check {v['check']}", v["reason"])] += 1
    for table in ("chains", "teacher_usage"):
        for r in rows(full, table):
            if r["status"] == "failed":
                expected[(table, r["reason"])] += 1
    for r in rows(full, "reviews"):
        if r["decision"] == "reject":
            expected[("review", r["decision_reason"])] += 1
    got = {(r["source"], r["reason"]): r["rows"] for r in report.section("rejections").as_dicts()}
    assert got == dict(expected.most_common(15))
    counts = [r["rows"] for r in report.section("rejections").as_dicts()]
    assert counts == sorted(counts, reverse=True)


def test_teacher_usage(report, full):
    usage = rows(full, "teacher_usage")
    total = report.section("teacher").lookup(stage="all")
    assert total["calls"] == len(usage)
    assert total["http_requests"] == sum(u["requests"] for u in usage)
    assert total["cache_hits"] == sum(1 for u in usage if u["cached"])
    assert total["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
    assert total["completion_tokens"] == sum(u["completion_tokens"] for u in usage)
    assert total["failed"] == sum(1 for u in usage if u["status"] == "failed")
    assert total["cost_usd"] == pytest.approx(round(sum(u["cost_usd"] for u in usage), 4))
    for stage in {u["stage"] for u in usage}:
        assert report.section("teacher").lookup(stage=stage)["calls"] == sum(1 for u in usage if u["stage"] == stage)


def test_reviews_and_tables(report, full):
    # the latest successful review of each chain counts, counted here without SQL
    latest: dict = {}
    for r in rows(full, "reviews"):
        if r["status"] != "ok":
            continue
        key, rank = (r["run"], r["chain_id"]), (r["reviewed_at"] or "", r["annotation_id"] or 0)
        if key not in latest or rank > latest[key][0]:
            latest[key] = (rank, r)
    got = Counter()
    for r in report.section("reviews").as_dicts():
        got[r["decision"]] += r["chains"]
    assert got == Counter(r["decision"] for _, r in latest.values())
    agreement = report.section("review_agreement").as_dicts()
    assert sum(a["chains"] for a in agreement) == len(latest)
    tables = {r["table"]: r for r in report.section("tables").as_dicts()}
    for table in TABLES:
        assert tables[table]["rows"] == len(rows(full, table)), table
        assert tables[table]["parts"] == len(list((full / table).glob("part-*.parquet"))), table


def test_a_run_with_only_videos_and_clips(cache):
    demo = demo_run_template(cache)
    with open_run(demo) as cat:
        report = standard_report(cat)
        data = plot_data(cat, report)
    metric = {r["metric"]: r["value"] for r in report.section("corpus").as_dicts()}
    assert metric["clips ok"] == len(rows(demo, "clips")) and metric["chains"] == 0
    assert "chains" in report.section("tables").note
    assert report.section("reviews").note and not report.section("reviews").rows
    assert report.section("qa_mix").rows == [] and data.thoughts_over_time == []
    assert data.clip_duration.total == metric["clips ok"]


# ---- helpers ------------------------------------------------------------------------------------
def test_quantiles_from_counts_equal_numpy():
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 100, 1001):
        values = rng.integers(0, 40, size)
        counts = list(Counter(values.tolist()).items())
        for q in (0.0, 0.1, 0.33, 0.5, 0.9, 1.0):
            assert quantile_from_counts(counts, q) == pytest.approx(float(np.quantile(values, q)))
    assert quantile_from_counts([], 0.5) is None


def test_histograms_keep_every_value():
    counts = [(3, 2), (17, 5), (95, 1), (96, 4)]
    h = histogram_from_counts("x", counts)
    assert h.total == 12 and len(h.edges) == len(h.counts) + 1
    assert h.edges[0] <= 3 and h.edges[-1] > 96
    assert nice_width(100, 30) in (2.5, 5.0) and nice_width(0, 10) == 1.0


# ---- vstw stats ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, full) -> Path:
    folder = tmp_path_factory.mktemp("stats-runs")
    copy_run(full, folder / full.name)
    return folder


def test_vstw_stats_prints_the_report(runs, report):
    proc = vstw(["stats", "demo"], runs)
    assert proc.returncode == 0, proc.stderr
    for section in report.sections:
        assert section.title.split(" (")[0] in proc.stdout
    kept = report.section("corpus").lookup(metric="chains kept (ok, no check failed)")["value"]
    assert re.search(rf"chains kept \(ok, no check failed\)\s*│\s*{int(kept)}\s", proc.stdout)
    # the only run is the default
    assert vstw(["stats"], runs).stdout == proc.stdout


def test_vstw_stats_json_equals_the_api(runs, report):
    proc = vstw(["stats", "demo", "--json"], runs)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [s["key"] for s in data["sections"]] == [s.key for s in report.sections]
    for got, want in zip(data["sections"], report.sections):
        assert got["rows"] == json.loads(json.dumps(want.as_dicts(), default=str)), want.key


def test_vstw_stats_all_runs(runs, full, tmp_path):
    both = tmp_path / "runs"
    copy_run(full, both / "demo")
    copy_run(full, both / "again")
    proc = vstw(["stats", "--all", "--json"], both)
    assert proc.returncode == 0, proc.stderr
    sections = {s["key"]: s["rows"] for s in json.loads(proc.stdout)["sections"]}
    corpus = {r["metric"]: r["value"] for r in sections["corpus"]}
    with open_run(full) as cat:
        one = {r["metric"]: r["value"] for r in standard_report(cat).section("corpus").as_dicts()}
    # the same ids in two runs are two items each (ids repeat across runs of the same videos)
    for metric in ("chains", "windows", "clips ok", "chains kept (ok, no check failed)", "thoughts (in ok chains)"):
        assert corpus[metric] == 2 * one[metric], metric
    clips_per_video = next(r for r in sections["distributions"] if r["measure"] == "clips per video")
    assert clips_per_video["max"] == max(Counter(c["video_id"] for c in rows(full, "clips")).values())
    proc = vstw(["stats"], both)
    assert proc.returncode != 0 and "known runs: again, demo" in proc.stderr


def test_vstw_stats_html_embeds_every_plot(runs, report):
    proc = vstw(["stats", "demo", "--html"], runs)
    assert proc.returncode == 0, proc.stderr
    path = runs / "demo" / "reports" / "stats.html"
    assert path.exists() and str(path) in proc.stdout.replace("\n", "")
    html = path.read_text()
    images = dict(re.findall(r'<figure id="plot-(\w+)"><img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html))
    assert set(images) == set(PLOTS)
    for name, data in images.items():
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, name
    # self-contained: no external resource
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for section in report.sections:
        assert f'id="{section.key}"' in html


def test_html_report_of_a_run_without_chains_still_has_every_plot(cache, tmp_path):
    demo = demo_run_template(cache)
    with open_run(demo) as cat:
        path = write_html_report(cat, tmp_path / "r.html")
    html = path.read_text()
    assert all(f'id="plot-{name}"' in html for name in PLOTS)
