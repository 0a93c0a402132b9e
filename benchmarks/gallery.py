"""Benchmark: a gallery of 50 chains from a run of 100k chains (issue 17), written and opened.

    python benchmarks/gallery.py                        # 100k chains, 50 on the page
    python benchmarks/gallery.py --chains 10000 --sample 20
    python benchmarks/gallery.py --screenshot docs/img/gallery.png --run data/runs/demo-XXXX

The run is generated in the runner's layout by benchmarks/scale.py (windows of 6-10 clips of 5 s,
three chains each), then the check and export stages run on it, so each card has its verdicts and
export decision. Its videos are long files like a user's (60 s at 240p-720p, 24-30 fps, built
with ffmpeg from the segmentation benchmark's corpus and cached in data/bench/gallery/), so a
keyframe is decoded from a real H.264 stream, not from a 5-second sample.

Measured, side by side in one session: `vstw show RUN --sample N` with an empty keyframe cache
(cold) and again (warm: every keyframe cached), each in a child process as a user runs it; then
the page opened from disk in headless Chromium through Selenium, timed until every card is laid
out and every image decoded (the same check the gallery test makes); then the same chains'
keyframes decoded in this process the naive way (each share's centre frame, one sorted batch per
video) beside the gallery's way (the frame cheapest to decode after a seek), one thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CACHE = ROOT / "data" / "bench" / "gallery"
# (source file of the shots corpus, output name): looped to LONG_S seconds
LONG_SOURCES = [("g06_720p30", "long_720p30"), ("g12_720p25", "long_720p25"), ("g08_480p25", "long_480p25"), ("g11_360p24", "long_360p24")]
LONG_S = 60


# ---- what the page looks like in a browser (shared with tests/test_gallery.py) ------------------
PAGE_STATE_JS = """
const cards = Array.from(document.querySelectorAll('article.card'));
const imgs = Array.from(document.images);
return {cards: cards.length, visible: cards.filter(c => !c.hidden).length, images: imgs.length,
        decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length};
"""


def page_state(driver) -> dict:
    return driver.execute_script(PAGE_STATE_JS)


def open_gallery(driver, page: Path, timeout: float = 30.0) -> tuple[dict, float]:
    """Load a gallery page from disk; wait until every image has decoded. Returns the page's state
    and the seconds from the request to that moment."""
    from annotation.browser import open_file, wait_for

    started = time.perf_counter()
    open_file(driver, page)
    wait_for(driver, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout, interval=0.02)
    return page_state(driver), time.perf_counter() - started


def set_filter(driver, attr: str, value: str) -> dict:
    """Choose a value in one of the page's filter menus (as a user would) and return the state."""
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", f"filter-{attr}")).select_by_value(value)
    return page_state(driver)


# ---- the corpus ----------------------------------------------------------------------------------
def long_videos() -> list[Path]:
    """Four 60 s files (cached): the segmentation corpus's files looped, re-encoded with libx264."""
    from _shots_corpus import build_corpus

    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    missing = [name for _, name in LONG_SOURCES if not (CACHE / f"{name}.mp4").exists()]
    if missing:
        truths = {Path(t["path"]).stem: Path(t["path"]) for t in build_corpus("full", log=lambda *a: None)}
    for source, name in LONG_SOURCES:
        target = CACHE / f"{name}.mp4"
        if not target.exists():
            tmp = target.with_suffix(".tmp.mp4")
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(truths[source]), "-t", str(LONG_S), "-an",
                            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(tmp)], check=True)  # fmt: skip
            tmp.rename(target)
        out.append(target)
    return out


def build_run(run_dir: Path, chains: int) -> None:
    """Generate the run (scale.py's generator), point its videos at the long files, run check + export."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import scale

    if (run_dir / "export_decisions" / "_SUCCESS.json").exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    scale.generate(run_dir, chains)
    videos = [str(p) for p in long_videos()]
    for part in sorted((run_dir / "videos").glob("part-*.parquet")):
        table = pq.read_table(part)
        paths = [videos[i % len(videos)] for i in table["input_index"].to_pylist()]
        pq.write_table(table.set_column(table.schema.get_field_index("path"), "path", pa.array(paths, pa.string())), part)
    for stage in ("check", "export"):
        print(f"  {stage} on {chains:,} chains ...", flush=True)
        scale.run_stage_here(run_dir, stage, workers=2, part_size=5000)


# ---- the measurements ----------------------------------------------------------------------------
def write_page(run_dir: Path, sample: int, out: Path) -> tuple[float, dict]:
    env = {**os.environ, "VSTW_PROGRESS": "0"}
    started = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "vstw"), "show", str(run_dir), "--sample", str(sample), "--out", str(out)],
                          capture_output=True, text=True, env=env)  # fmt: skip
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"vstw show failed: {proc.stderr}")
    return seconds, {"said": " ".join(proc.stdout.split())}


def picking_side_by_side(run_dir: Path, sample: int) -> dict:
    """The keyframes of the same sampled chains decoded two ways, in this process, one thread:
    each share's centre frame by one sorted batch (decoding through the clip: the baseline), and
    the frame cheapest to decode after a seek (what the gallery does)."""
    from curation.video.decode import open_reader, scaled_size
    from curation.video.keyframes import KEYFRAME_WIDTH, codec_keyframes, keyframe_jpegs, pick_keyframes
    from pipelines.catalog import open_run
    from pipelines.gallery import GalleryRequest, load_cards, select_chains

    with open_run(run_dir) as cat:
        cards = load_cards(cat, select_chains(cat, GalleryRequest(sample=sample))[0])
    clips_by_video: dict[tuple[str, str], list[list[int]]] = {}  # (video_id, path): as the gallery decodes them
    for card in cards:
        clips_by_video.setdefault((card["video"]["video_id"], card["video"]["path"]), []).extend(c["vst_frame_indices"] for c in card["clips"].values())
    timings = {"centre_batch_s": 0.0, "cheap_seek_s": 0.0, "frames": 0}
    for (_, path), clips in clips_by_video.items():
        started = time.perf_counter()
        centre = sorted({f for frames in clips for f in pick_keyframes(frames, 2)})
        probe = open_reader(path)
        w, h = scaled_size(probe[0].shape[1], probe[0].shape[0], KEYFRAME_WIDTH)
        open_reader(path, width=w, height=h).get_batch(centre).asnumpy()
        timings["centre_batch_s"] += time.perf_counter() - started
        started = time.perf_counter()
        keys = codec_keyframes(path)[0]
        cheap = sorted({f for frames in clips for f in pick_keyframes(frames, 2, keys)})
        keyframe_jpegs(path, cheap)
        timings["cheap_seek_s"] += time.perf_counter() - started
        timings["frames"] += len(cheap)
    timings = {k: round(v, 2) for k, v in timings.items()}
    timings["speedup"] = round(timings["centre_batch_s"] / timings["cheap_seek_s"], 2)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--screenshot", type=Path, help="only write a screenshot of RUN's gallery (e.g. docs/img/gallery.png)")
    parser.add_argument("--run", type=Path, help="with --screenshot: the run folder (e.g. the demo run)")
    args = parser.parse_args()

    from annotation.browser import chromium, is_blank_png, screenshot

    if args.screenshot:
        page = args.run / "reports" / "gallery.html"
        write_page(args.run, args.sample, page)
        with chromium(width=1400, height=1200) as driver:
            state, _ = open_gallery(driver, page)
            screenshot(driver, args.screenshot)
        print(json.dumps({"screenshot": str(args.screenshot), **state, "blank": is_blank_png(args.screenshot)}))
        return

    run_dir = CACHE / f"run-{args.chains}"
    build_run(run_dir, args.chains)
    page = run_dir / "reports" / "gallery.html"
    shutil.rmtree(run_dir / "keyframes", ignore_errors=True)
    cold, said = write_page(run_dir, args.sample, page)
    warm, _ = write_page(run_dir, args.sample, page)
    with chromium(width=1400, height=1200) as driver:
        open_gallery(driver, page)  # the browser's own start-up is not the page's
        state, opened = open_gallery(driver, page)
    side = picking_side_by_side(run_dir, args.sample)
    print(json.dumps({"picking": side}))
    size_mb = page.stat().st_size / 2**20
    result = {"chains_in_run": args.chains, "sample": args.sample, "write_cold_s": round(cold, 2), "write_warm_s": round(warm, 2),
              "open_s": round(opened, 2), "page_mb": round(size_mb, 2), **state, **said}  # fmt: skip
    print(json.dumps(result))
    print(f"| {args.chains:,} | {args.sample} | {cold:.1f} | {warm:.1f} | {opened:.2f} | {size_mb:.1f} | {state['decoded']}/{state['images']} |")


if __name__ == "__main__":
    main()
