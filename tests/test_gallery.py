"""The chain gallery (`vstw show`) and the report's links to it, on a real run.

Two synthetic worlds go through every stage with the simulated teacher injecting mistakes into some
of its replies, so the run has exported chains and chains kept out with real reason
codes. The page is checked as HTML (what it holds) and in Chromium through Selenium (what a
curator sees: cards, decoded keyframes, filters).
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from _corpus_fixtures import vstw
from _gate_fixtures import simulated_teacher_recipe, worlds_manifest
from curation.video.keyframes import KEYFRAME_WIDTH, codec_keyframes, decode_cost, encode_jpeg, keyframe_jpegs, pick_keyframes
from pipelines.catalog import open_run
from pipelines.gallery import GalleryError, GalleryRequest, select_chains, write_gallery
from pipelines.recipe import parse_recipe
from pipelines.run import run_recipe
from pipelines.teacher_sim import SimulatedTeacherServer

PROJECT = Path(__file__).resolve().parents[1]
CARD = re.compile(r'<article class="card[^"]*" id="([^"]+)"')


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    manifest = worlds_manifest(root / "worlds", count=2, seed=77)
    with SimulatedTeacherServer(rate=0.15, kinds=("wrong_answer", "future_entity", "wrong_attribute"), seed=11) as server:
        run_recipe(parse_recipe(simulated_teacher_recipe(manifest, server.base_url)), "g", PROJECT, root / "runs", progress=False, echo=lambda *_: None)
    return root / "runs"


def cards_of(page: Path) -> list[str]:
    return CARD.findall(page.read_text())


def exported_of(run_root: Path) -> dict[str, bool]:
    with open_run(run_root) as cat:
        return dict(cat.rows("SELECT chain_id, exported FROM export_decisions"))


def test_the_run_has_exported_and_excluded_chains(runs):
    exported = exported_of(runs / "g")
    assert any(exported.values()) and not all(exported.values()), exported


def test_show_writes_the_sampled_chains_with_all_they_carry(runs):
    out = runs / "g" / "reports" / "five.html"
    proc = vstw(["show", "g", "--sample", "5", "--seed", "3", "--out", str(out)], runs)
    assert proc.returncode == 0, proc.stderr
    ids = cards_of(out)
    with open_run(runs / "g") as cat:
        keys, matched = select_chains(cat, GalleryRequest(sample=5, seed=3))
        assert ids == [k[1] for k in keys] and len(ids) == 5 and matched > 5
        verdicts = dict(cat.rows("SELECT chain_id, count(*) FROM all_verdicts GROUP BY ALL"))
        chains = {c["chain_id"]: c for c in cat.con.sql("SELECT chain_id, thoughts, qa, final_answer FROM chains").to_arrow_table().to_pylist()}
        excluded = dict(cat.rows("SELECT chain_id, excluded_by FROM export_decisions"))
    text = out.read_text()
    for chain_id in ids:
        card = text[text.index(f'id="{chain_id}"') :].split("</article>", 1)[0]
        chain = chains[chain_id]
        for thought in chain["thoughts"]:
            assert html.escape(thought["text"]) in card
        assert html.escape(chain["qa"]["question"]) in card and html.escape(chain["final_answer"]) in card
        assert card.count("<tr class=") == verdicts[chain_id]  # every verdict of every kind
        for code in excluded[chain_id]:
            assert f"<code>{html.escape(code)}</code>" in card
    # the same seed gives the same page, another seed other chains
    again = vstw(["show", "g", "--sample", "5", "--seed", "3", "--out", str(out.with_name("again.html"))], runs)
    other = vstw(["show", "g", "--sample", "5", "--seed", "4", "--out", str(out.with_name("other.html"))], runs)
    assert again.returncode == other.returncode == 0
    assert cards_of(out.with_name("again.html")) == ids and cards_of(out.with_name("other.html")) != ids


def test_where_shows_only_the_rejected_chains(runs):
    out = runs / "g" / "reports" / "rejected.html"
    proc = vstw(["show", "g", "--where", "NOT exported", "--sample", "100", "--out", str(out)], runs)
    assert proc.returncode == 0, proc.stderr
    exported = exported_of(runs / "g")
    assert sorted(cards_of(out)) == sorted(c for c, e in exported.items() if not e)
    assert 'class="badge ok"' not in out.read_text()


def test_keyframes_are_vst_frames_cached_once(runs, tmp_path):
    run_root = runs / "g"
    shutil.rmtree(run_root / "keyframes", ignore_errors=True)
    with open_run(run_root) as cat:
        first = write_gallery(cat, GalleryRequest(sample=4, seed=1), tmp_path / "a.html", progress=False)
        second = write_gallery(cat, GalleryRequest(sample=4, seed=1), tmp_path / "b.html", progress=False)
        keys, _ = select_chains(cat, GalleryRequest(sample=4, seed=1))
        clips = cat.con.sql(
            "SELECT DISTINCT v.path, cl.clip_id, cl.vst_frame_indices FROM clips cl, videos v, chains c, unnest(c.thoughts) AS t(th) "
            "WHERE th.clip_id = cl.clip_id AND v.video_id = cl.video_id AND list_contains(?, c.chain_id)",
            params=[[k[1] for k in keys]],
        ).fetchall()
    codec = {path: codec_keyframes(path)[0] for path, _, _ in clips}
    expected = {(path, f) for path, _, frames in clips for f in pick_keyframes(frames, 2, codec[path])}
    assert all(set(pick_keyframes(frames, 2, codec[path])) <= set(frames) for path, _, frames in clips)
    assert first.decoded == len(expected) == len(list((run_root / "keyframes").rglob("*.jpg")))
    assert second.decoded == 0 and second.keyframes == first.keyframes
    titles = {int(t) for t in re.findall(r'title="source frame (\d+)"', (tmp_path / "a.html").read_text())}
    assert titles == {f for _, f in expected}
    images = json.loads(re.search(r"const KF = (\{.*?\});", (tmp_path / "a.html").read_text()).group(1))
    for data in images.values():
        picture = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and 0 < picture.shape[1] <= KEYFRAME_WIDTH


def test_picks_spread_over_the_clip_and_prefer_frames_cheap_to_decode():
    frames = list(range(0, 240, 12))  # 20 VST frames
    assert pick_keyframes(frames, 2) == [frames[5], frames[15]]  # the centres of the two halves
    # the cheapest frame of each half: the fewest frames after a codec keyframe ...
    assert pick_keyframes(frames, 2, [0, 130, 200]) == [0, 132]  # 132 is 2 after 130, 204 is 4 after 200
    # ... and of two as cheap, the one nearer the half's centre (180)
    assert pick_keyframes(frames, 2, [0, 130, 202]) == [0, 204]
    # a half with no keyframe in it gets its centre (its cheapest frame would be its first)
    assert pick_keyframes(frames, 2, [0]) == [0, frames[15]]
    assert pick_keyframes(frames[:1], 2) == [0] and pick_keyframes([], 2) == [] and pick_keyframes(frames, 0) == []
    assert decode_cost(132, [0, 130]) == 2 and decode_cost(5, []) == 5


def test_sought_frames_are_the_frames_a_full_decode_gives(samples):
    video = sorted((samples.parent / "real").glob("*.mp4"))[0]  # real footage, H.264
    from curation.video.decode import open_reader, scaled_size

    reader = open_reader(video)
    n, (h, w) = len(reader), reader[0].shape[:2]
    wanted = sorted({0, n // 3, n // 3 + 1, n - 1})
    jpegs = keyframe_jpegs(video, wanted, width=KEYFRAME_WIDTH)
    sw, sh = scaled_size(w, h, KEYFRAME_WIDTH)
    full = open_reader(video, width=sw, height=sh).get_batch(wanted).asnumpy()
    for frame, expected in zip(wanted, full):
        assert jpegs[frame] == encode_jpeg(expected), frame  # the very same pixels, so the same JPEG bytes
    assert len(set(jpegs.values())) == len(wanted)


@pytest.mark.parametrize(
    "args, said",
    [
        (["--chain", "ch-0000000000000000"], "no chain ch-0000000000000000"),
        (["--where", "exportd"], "the --where condition did not run"),
        (["--where", "qa_type = 'no-such-type'"], "no chain matches"),
        (["--sample", "0"], "--sample must be at least 1"),
    ],
)
def test_bad_requests_say_why_and_write_no_page(runs, tmp_path, args, said):
    out = tmp_path / "page.html"
    proc = vstw(["show", "g", *args, "--out", str(out)], runs)
    assert proc.returncode == 2 and said in proc.stderr.replace("\n", " "), proc.stderr
    assert not out.exists()


def test_a_missing_video_loses_only_its_keyframes(runs, tmp_path):
    copy = tmp_path / "runs" / "g"
    shutil.copytree(runs / "g", copy, ignore=shutil.ignore_patterns("keyframes"))
    with open_run(copy) as cat:
        videos = dict(cat.rows("SELECT video_id, path FROM videos"))
        lost_id, lost_path = sorted(videos.items())[0]
        moved = Path(lost_path).rename(Path(lost_path).with_suffix(".moved"))
        try:
            result = write_gallery(cat, GalleryRequest(sample=100), tmp_path / "p.html", progress=False)
        finally:
            moved.rename(lost_path)
    text = (tmp_path / "p.html").read_text()
    assert lost_id in result.problems and "cannot be decoded" in result.problems[lost_id]
    assert "keyframes unavailable" in text and result.keyframes > 0  # the other video's frames are there
    assert len(cards_of(tmp_path / "p.html")) == result.chains == result.matched


def test_chain_ids_keep_their_order(runs, tmp_path):
    with open_run(runs / "g") as cat:
        ids = [r[0] for r in cat.rows("SELECT chain_id FROM chains ORDER BY chain_id DESC LIMIT 3")]
        write_gallery(cat, GalleryRequest(chain_ids=ids), tmp_path / "p.html", progress=False)
        with pytest.raises(GalleryError, match="no chain nope"):
            write_gallery(cat, GalleryRequest(chain_ids=[ids[0], "nope"]), tmp_path / "q.html", progress=False)
    assert cards_of(tmp_path / "p.html") == ids and not (tmp_path / "q.html").exists()


def test_stats_html_links_reasons_and_checks_to_their_chains(runs):
    proc = vstw(["stats", "g", "--html"], runs)
    assert proc.returncode == 0, proc.stderr
    report = runs / "g" / "reports" / "stats.html"
    links = re.findall(r'<tr>(.*?)<td><a href="(gallery/[^"]+)">chains</a></td></tr>', report.read_text())
    assert links
    with open_run(runs / "g") as cat:
        failed = {}
        for chain_id, check, reason in cat.rows("""SELECT chain_id, "check", coalesce(reason, "check" || '_failed') FROM all_verdicts WHERE status = 'ok' AND NOT passed"""):
            failed.setdefault((check, reason), set()).add(chain_id)
    checked = 0
    for cells, href in links:
        page = report.parent / href
        assert page.is_file(), href
        values = re.findall(r"<td[^>]*>(.*?)</td>", cells)
        if values[0].startswith("check ") and (values[0][6:], values[1]) in failed:
            shown = set(cards_of(page))
            assert shown and shown <= failed[(values[0][6:], values[1])]
            checked += 1
    assert checked > 0


def gallery_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gallery", PROJECT / "benchmarks" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_in_chromium_shows_every_card_decodes_every_image_and_filters(runs, tmp_path):
    """What a curator sees, in Debian's Chromium through Selenium (the benchmark's and the docs
    screenshot's own code path: benchmarks/gallery.py)."""
    from annotation.browser import chromium, is_blank_png, screenshot

    bench = gallery_bench()
    page = tmp_path / "page.html"
    with open_run(runs / "g") as cat:
        result = write_gallery(cat, GalleryRequest(sample=100), page, progress=False)
        types = dict(cat.rows("SELECT chain_id, qa.type FROM chains"))
    exported = exported_of(runs / "g")
    with chromium(width=1400, height=1200) as driver:
        state, _ = bench.open_gallery(driver, page)
        assert state["cards"] == result.chains == len(exported)
        assert state["images"] > 0 and state["decoded"] == state["images"], state
        excluded = sum(1 for e in exported.values() if not e)
        assert 0 < excluded < len(exported)
        assert bench.set_filter(driver, "exported", "no")["visible"] == excluded
        assert driver.find_element("id", "shown").text == f"{excluded} of {len(exported)} chains shown"
        assert bench.set_filter(driver, "exported", "")["visible"] == len(exported)
        qa_type = sorted(set(types.values()))[0]
        assert bench.set_filter(driver, "qaType", qa_type)["visible"] == sum(1 for t in types.values() if t == qa_type)
        bench.set_filter(driver, "qaType", "")
        shot = screenshot(driver, tmp_path / "gallery.png")
        with open_run(runs / "g") as cat:  # fewer than the run has: the page holds what was asked
            write_gallery(cat, GalleryRequest(sample=5, seed=9), tmp_path / "five.html", progress=False)
        five, _ = bench.open_gallery(driver, tmp_path / "five.html")
        assert five["cards"] == five["visible"] == 5 and five["decoded"] == five["images"] > 0
    assert shot.stat().st_size > 10_000 and not is_blank_png(shot)


def test_reviews_and_their_corrections_are_on_the_card(runs, tmp_path):
    from curation.schemas import REVIEWS, to_table
    from pipelines.rundir import RunDir

    copy = tmp_path / "runs" / "g"
    shutil.copytree(runs / "g", copy, ignore=shutil.ignore_patterns("keyframes"))
    with open_run(copy) as cat:
        accepted, rejected = [r[0] for r in cat.rows("SELECT chain_id FROM chains ORDER BY chain_id LIMIT 2")]
    corrections = {"thoughts": {"0": "A red circle enters from the left (corrected)."}}
    rows = [
        {"chain_id": accepted, "task_id": 1, "annotation_id": 11, "reviewer": "ann@example.org", "decision": "accept", "corrections": json.dumps(corrections),
         "labels": ["ok"], "reviewed_at": "2026-12-07T10:00:00Z", "run": "g", "status": "ok"},
        {"chain_id": rejected, "task_id": 2, "annotation_id": 12, "reviewer": "bob@example.org", "decision": "reject", "decision_reason": "wrong_answer",
         "comment": "the count is off by one", "reviewed_at": "2026-12-07T10:05:00Z", "run": "g", "status": "ok"},
    ]  # fmt: skip
    RunDir(copy).write_part("reviews", "part-00000-test", to_table(rows, REVIEWS))
    with open_run(copy) as cat:
        write_gallery(cat, GalleryRequest(chain_ids=[accepted, rejected]), tmp_path / "p.html", progress=False)
    text = (tmp_path / "p.html").read_text()
    first, second = text.split("</article>")[:2]
    assert "<b>accept</b> by ann@example.org" in first and "A red circle enters from the left (corrected)." in first
    assert "<b>reject</b> by bob@example.org" in second and "<code>wrong_answer</code>" in second and "the count is off by one" in second
    assert re.search(r'data-reasons="[^"]*\bwrong_answer\b', second)
