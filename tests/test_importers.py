"""Bring your own annotations: `vstw import` for subtitles (SRT, WebVTT), ActivityNet Captions,
YouCook2, Charades-STA, Ego4D narrations and word-level ASR. Each format's fixture (written
here, small) imports to the expected manifest rows; each bad case is a row-level problem with its
reason; an imported manifest runs through ingest -> segment -> perceive with each clip's caption
holding the cues that overlap it, and composed thoughts state a sentence where it ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.importers.cues import Cue, clean_text, tidy_stream, to_sentences
from curation.importers.datasets import ego4d_text, group_words
from curation.synthetic import make_script, render_video
from pipelines.importer import import_annotations, report_path

from _corpus_fixtures import vstw


# ---- the videos: three short synthetic videos with known lengths (cuts at known times) --------------
@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name, seed in (("alpha", 1), ("beta", 2), ("v_gamma", 3)):
        render_video(make_script(name, seed=seed, n_scenes=2, scene_s=(3.0, 3.0)), folder / f"{name}.mp4")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)  # a damaged container
    return folder


def duration(folder: Path, name: str) -> float:
    from curation.video.clock import FrameClock

    return FrameClock.of_path(folder / f"{name}.mp4").duration_s


def rows_of(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


def reasons(report) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in report.problems:
        out[p.reason] = out.get(p.reason, 0) + 1
    return out


SRT_ALPHA = """1
00:00:00,500 --> 00:00:02,000
<i>A red circle</i> appears on the left.

2
00:00:02,000 --> 00:00:03,500
It moves to the right

3
00:00:03,600 --> 00:00:05,000
and leaves the view. A blue square stays.

4
00:00:05,000 --> 00:00:05,000
[music]

5
00:00:04,800 --> 00:00:05,500
A blue square stays.

6
00:00:09,000 --> 00:00:12,000
Long after the end.

7
00:00:05,700 -> 00:00:06,000
a malformed cue
"""


def test_srt_imports_cleaned_sentences_and_reports_every_bad_cue(videos, tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "alpha.srt").write_text(SRT_ALPHA)
    (tmp_path / "subs" / "ghost.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nNobody has this video.\n")
    out = tmp_path / "out" / "manifest.jsonl"
    report = import_annotations("srt", tmp_path / "subs", videos, out)
    rows = rows_of(out)
    assert list(rows) == ["alpha"]  # ghost has no video; beta, v_gamma have no .srt
    alpha = rows["alpha"]
    assert Path(alpha["path"]).resolve() == (videos / "alpha.mp4").resolve()
    assert alpha["metadata"] == {"annotation_format": "srt", "annotations_from": "alpha.srt"}
    texts = [a["text"] for a in alpha["annotations"]]
    # tags out; "It moves to the right" + "and leaves the view." joined (mid-sentence, 0.1 s gap),
    # then split from "A blue square stays."; the repeated cue merged; [music] is no text
    assert texts == ["A red circle appears on the left.", "It moves to the right and leaves the view.", "A blue square stays."]
    assert all(a["kind"] == "subtitle" for a in alpha["annotations"])
    joined = alpha["annotations"][1]
    assert joined["start_s"] == 2.0 and 3.6 < joined["end_s"] < 5.0  # its share of the split cue
    assert alpha["annotations"][2]["end_s"] == 5.5  # the repeat extended it
    got = reasons(report)
    assert got["bad_times"] == 1  # the zero-length [music] cue (no length) ...
    assert got["bad_cue"] == 1 and got["duplicate_cue"] == 1 and got["beyond_duration"] == 1
    assert got["no_video"] == 1 and got["no_annotations"] >= 2  # ghost.srt; beta, v_gamma (and broken)
    bad = next(p for p in report.problems if p.reason == "bad_cue")
    assert bad.item == "alpha.srt cue 7" and "00:00:05,700 -> 00:00:06,000 / a malformed cue" in bad.message
    beyond = next(p for p in report.problems if p.reason == "beyond_duration")
    assert "Long after the end" in beyond.message and f"{duration(videos, 'alpha'):.3f}" in beyond.message
    assert report.rows == 1 and report.annotations_kept == 3
    saved = json.loads(report_path(out).read_text())
    assert saved["dropped_by_reason"]["beyond_duration"] == 1 and len(saved["problems"]) == len(report.problems)


def test_webvtt_roll_up_captions_keep_only_new_words_and_overlaps_are_trimmed(videos, tmp_path):
    vtt = """WEBVTT

NOTE made by hand

00:00:00.000 --> 00:00:01.500 align:start
<v Ann>a person walks in

00:00:01.000 --> 00:00:02.500
a person walks in
and sits down.

00:00:02.400 --> 00:00:04.000
A dog runs past.

00:00:03.000 --> 00:00:03.500
Inside the one before.

garbage line without a time
"""
    (tmp_path / "beta.vtt").write_text(vtt)
    out = tmp_path / "m.jsonl"
    report = import_annotations("vtt", tmp_path / "beta.vtt", videos, out)
    beta = rows_of(out)["beta"]["annotations"]
    assert [a["text"] for a in beta] == ["a person walks in and sits down.", "A dog runs past."]
    assert beta[0]["start_s"] == 0.0 and beta[0]["end_s"] == 2.4  # trimmed where the dog cue starts
    got = reasons(report)
    assert got["rollup_trimmed"] == 1 and got["overlap_trimmed"] >= 1 and got["overlapping_cue"] == 1 and got["bad_cue"] == 1


def test_activitynet_youcook2_charades_import_by_id(videos, tmp_path):
    anet = {
        "v_gamma": {"duration": 6.0, "timestamps": [[0.0, 4.0], [2.5, 6.5], [7.0, 9.0], [1.0, 1.0]],
                    "sentences": [" A man enters the room.", "He sits on a chair.  ", "Too late.", "Zero length."]},
        "v_missing": {"duration": 10, "timestamps": [[0, 1]], "sentences": ["No video for me."]},
        "v_bad": {"timestamps": [[0, 1]]},
    }
    (tmp_path / "anet.json").write_text(json.dumps(anet))
    out = tmp_path / "anet.jsonl"
    report = import_annotations("activitynet", tmp_path / "anet.json", videos, out)
    gamma = rows_of(out)["v_gamma"]  # the file is v_gamma.mp4; ActivityNet's own id kept
    assert [a["text"] for a in gamma["annotations"]] == ["A man enters the room.", "He sits on a chair."]
    assert gamma["annotations"][1]["end_s"] == pytest.approx(duration(videos, "v_gamma"), abs=1e-3)  # clamped
    assert all(a["kind"] == "caption" for a in gamma["annotations"])
    got = reasons(report)
    assert got == {"end_clamped": 1, "beyond_duration": 1, "bad_times": 1, "no_video": 1, "bad_entry": 1}

    youcook = {"database": {"alpha": {"duration": 6, "annotations": [{"segment": [0, 3], "sentence": "crack two eggs into a bowl"},
                                                                    {"segment": [3, 5.5], "sentence": "whisk the eggs"},
                                                                    {"segment": "x", "sentence": "bad"}]}}}
    (tmp_path / "yc.json").write_text(json.dumps(youcook))
    report = import_annotations("youcook2", tmp_path / "yc.json", videos, tmp_path / "yc.jsonl")
    alpha = rows_of(tmp_path / "yc.jsonl")["alpha"]["annotations"]
    assert [(a["start_s"], a["end_s"], a["text"]) for a in alpha] == [(0.0, 3.0, "crack two eggs into a bowl"), (3.0, 5.5, "whisk the eggs")]
    assert reasons(report) == {"bad_entry": 1}

    (tmp_path / "sta.txt").write_text("beta 0.0 2.5##person opens a door.\nbeta 2.0 4.5##person turns a light on.\nbeta 1 2 no separator\n"
                                      "beta 0.0 2.5##person opens a door.\nnovideo 0 1##someone.\n")
    report = import_annotations("charades-sta", tmp_path / "sta.txt", videos, tmp_path / "sta.jsonl")
    beta = rows_of(tmp_path / "sta.jsonl")["beta"]["annotations"]
    assert [a["text"] for a in beta] == ["person opens a door.", "person turns a light on."]  # dense captions may overlap
    assert reasons(report) == {"bad_entry": 1, "duplicate_cue": 1, "no_video": 1}
    assert "line 3" in next(p.item for p in report.problems if p.reason == "bad_entry")


def test_ego4d_narrations_become_spans_to_the_next_one(videos, tmp_path):
    ego = {"videos": {"alpha": {"narration_pass_1": {"narrations": [
        {"timestamp_sec": 0.5, "narration_text": "#C C picks up a cup"},
        {"timestamp_sec": 2.0, "narration_text": "#O a man X hands C a plate #unsure"},
        {"timestamp_sec": 4.5, "narration_text": "#C C puts the cup down"},
        {"timestamp_sec": "soon", "narration_text": "#C C waits"},
    ]}}}}
    (tmp_path / "narration.json").write_text(json.dumps(ego))
    report = import_annotations("ego4d", tmp_path / "narration.json", videos, tmp_path / "ego.jsonl")
    alpha = rows_of(tmp_path / "ego.jsonl")["alpha"]["annotations"]
    assert [(a["start_s"], a["end_s"]) for a in alpha] == [(0.5, 2.0), (2.0, 4.5), (4.5, pytest.approx(duration(videos, "alpha"), abs=1e-3))]
    assert alpha[0]["text"] == "The camera wearer picks up a cup."
    assert alpha[1]["text"] == "A man X hands the camera wearer a plate."
    assert all(a["kind"] == "narration" for a in alpha)
    assert reasons(report) == {"bad_entry": 1}  # the last span's end was never given: cut silently


def test_asr_words_are_grouped_into_sentences_by_pauses(videos, tmp_path):
    words = [{"word": w, "start": s, "end": s + 0.3} for w, s in
             [("Now", 0.0), ("we", 0.35), ("cut", 0.7), ("the", 1.05), ("onion.", 1.4), ("Then", 1.8), ("we", 2.15),
              ("wait", 2.5), ("and", 4.0), ("stir", 4.35)]]
    words.append({"word": "broken"})
    (tmp_path / "asr").mkdir()
    (tmp_path / "asr" / "beta.json").write_text(json.dumps({"segments": [{"words": words}]}))
    report = import_annotations("asr-words", tmp_path / "asr", videos, tmp_path / "asr.jsonl")
    beta = rows_of(tmp_path / "asr.jsonl")["beta"]["annotations"]
    assert [a["text"] for a in beta] == ["Now we cut the onion.", "Then we wait", "and stir"]  # a sentence end, then a 1.2 s pause
    assert [a["kind"] for a in beta] == ["asr"] * 3
    assert beta[0]["start_s"] == 0.0 and beta[0]["end_s"] == 1.7
    assert reasons(report).get("bad_word") == 1


def test_bad_sources_and_bad_videos_are_reported_never_raised(videos, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    report = import_annotations("activitynet", tmp_path / "broken.json", videos, tmp_path / "x.jsonl")
    assert report.rows == 0 and reasons(report) == {"unreadable_source": 1}
    assert (tmp_path / "x.jsonl").read_text() == ""
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "broken.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nSomething.\n")
    report = import_annotations("srt", tmp_path / "subs", videos, tmp_path / "y.jsonl")
    unreadable = [p for p in report.problems if p.reason == "video_unreadable"]
    assert len(unreadable) == 1 and "broken.mp4" in unreadable[0].message and unreadable[0].dropped == 1
    assert report.videos_unreadable == 1 and report.rows == 0


def test_cue_helpers():
    assert clean_text("- <b>Hi</b> there!\n- {\\an8}You &amp; me ♪") == "Hi there! You & me"
    cues = to_sentences([Cue(0.0, 4.0, "One. Two two two.", "subtitle")])
    assert [(c.text, c.start_s, round(c.end_s, 3)) for c in cues] == [("One.", 0.0, 1.0), ("Two two two.", 1.0, 4.0)]  # 4 and 12 characters
    tidy, problems = tidy_stream([Cue(0, 2, "a b", "asr"), Cue(1, 3, "a b c d", "asr")], "x")
    assert [(c.text, c.start_s, c.end_s) for c in tidy] == [("a b", 0, 1), ("c d", 1, 3)]
    assert {p.reason for p in problems} == {"rollup_trimmed", "overlap_trimmed"}
    assert ego4d_text("#C C opens the fridge") == "The camera wearer opens the fridge."
    grouped, _ = group_words([{"word": str(i), "start": i * 0.1, "end": i * 0.1 + 0.05} for i in range(60)], "w", max_words=25)
    assert [len(c.text.split()) for c in grouped] == [25, 25, 10]


# ---- the default path -------------------------------------------------------------------------------
def test_imported_subtitles_run_to_captions_and_thoughts_that_state_them_where_they_end(videos, tmp_path, run_recipe_dict):
    (tmp_path / "subs").mkdir()
    sentences = [(0.2, 2.4, "A red ball rolls in from the left."), (2.6, 5.2, "A man in a blue coat picks up the ball.")]
    (tmp_path / "subs" / "beta.srt").write_text("".join(
        f"{n}\n00:00:{s:06.3f} --> 00:00:{e:06.3f}\n{t}\n\n".replace(".", ",", 2) for n, (s, e, t) in enumerate(sentences, 1)))
    manifest = tmp_path / "m.jsonl"
    assert import_annotations("srt", tmp_path / "subs", videos, manifest).rows == 1
    run = run_recipe_dict({
        "name": "import-test", "inputs": [{"manifest": str(manifest)}], "allowed_roots": [str(videos), str(tmp_path)],
        "runner": {"workers": 1, "part_size": 4},
        "stages": [{"stage": "ingest"}, {"stage": "segment", "min_clip_s": 1.0, "max_clip_s": 2.0},
                   {"stage": "perceive", "source": "annotation"}, {"stage": "graph", "source": "facts"}],
    })
    clips = sorted(run.read_rows("clips"), key=lambda c: c["index"])
    captions = {c["clip_id"]: c for c in run.read_rows("captions")}
    assert len(clips) >= 3
    for clip in clips:
        overlapping = [t for s, e, t in sentences if s < clip["end_s"] and e > clip["start_s"]]
        cap = captions[clip["clip_id"]]
        if overlapping:
            assert cap["status"] == "ok" and cap["caption"] == " ".join(overlapping) and cap["source"] == "annotation"
            assert cap["told"] == [t for s, e, t in sentences if clip["start_s"] < e <= clip["end_s"]]
        else:
            assert cap["reason"] == "no_annotation_in_clip"
    # thoughts composed for the window: each sentence stated in the clip where it ends, never before
    from curation.compose import compose_thoughts

    graph = next(g for g in run.read_rows("graphs") if g["status"] == "ok")
    wclips = [{**c, **{k: captions[c["clip_id"]][k] for k in ("caption", "entities", "told")}} for c in clips
              if c["window_id"] == graph["window_id"] and captions[c["clip_id"]]["status"] == "ok"]
    thoughts = compose_thoughts(wclips, graph, seed=graph["window_id"], max_words=30)
    for clip, thought in zip(wclips, thoughts):
        for s, e, text in sentences:
            said = text.rstrip(".").lower()[2:] in thought["text"].lower()
            assert said == (clip["start_s"] < e <= clip["end_s"]), (clip["start_s"], clip["end_s"], thought["text"])


def test_cli_import_prints_a_summary_and_refuses_unknown_formats(videos, tmp_path):
    (tmp_path / "alpha.srt").write_text(SRT_ALPHA)
    out = tmp_path / "manifest.jsonl"
    done = vstw(["import", "srt", str(tmp_path), "--videos", str(videos), "--out", str(out)], tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    assert "1 videos with 3 annotations" in done.stdout and "beyond_duration 1" in done.stdout and "bad_cue" in done.stdout
    assert f"allowed_roots: [{videos.resolve()}]" in done.stdout
    bad = vstw(["import", "sbv", str(tmp_path), "--videos", str(videos), "--out", str(out)], tmp_path / "runs")
    assert bad.returncode == 2 and "unknown format 'sbv'" in bad.stderr and "activitynet" in bad.stderr
    none = vstw(["import", "srt", str(tmp_path / "nothing-here"), "--videos", str(videos), "--out", str(out)], tmp_path / "runs")
    assert none.returncode == 2 and "no such file or folder" in none.stderr


def test_a_manifest_row_may_point_at_its_subtitles(tmp_path):
    from pipelines.inputs import read_annotations_file

    (tmp_path / "a.srt").write_text(SRT_ALPHA)
    annotations = read_annotations_file(tmp_path / "a.srt")
    assert annotations[0] == {"start_s": 0.5, "end_s": 2.0, "text": "A red circle appears on the left.", "kind": "subtitle"}
