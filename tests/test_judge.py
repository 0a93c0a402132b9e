"""The VST-model judge: the streaming protocol with KV-cache reuse equals a no-cache reference,
sampling draws on the logits' device, decoding / frames / visual budget follow VST, and the judge
stage writes verdicts for real chains of a real demo run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _model_fixtures import demo_run_with_chains, tiny_model
from curation.model.judge import ChainResult, JudgeConfig, JudgeRules, own_thinking, teacher_forced, thought_likelihood, verdicts
from curation.model.vst_protocol import (
    ClipInput,
    PrefixCache,
    Sampling,
    SeededGenerators,
    VisualBudget,
    VSTEngine,
    answer_is_right,
    extract_answer,
    final_question,
    final_turns,
    fit_clips,
    pick_token,
    visual_tokens,
    window_frame_size,
)

torch.set_num_threads(1)  # on a shared, loaded machine one thread is several times faster than two
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("judge-tiny") / "model")


@pytest.fixture(scope="module")
def loaded(tiny):
    from curation.model.tiny import load_model

    return load_model(tiny, device="cpu")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run_with_chains(tmp_path_factory.mktemp("judge-runs"))


@pytest.fixture(scope="module")
def chain_inputs(demo):
    """Three real chains of several clips each, decoded as the judge stage decodes them."""
    from pipelines.stages.judge import JudgeParams, chain_input, load_judge_inputs

    run_dir, _ = demo
    records = load_judge_inputs(run_dir, JudgeParams())
    records = sorted((r for r in records if len(r["chain"]["thoughts"]) >= 3), key=lambda r: r["chain_id"])
    picked, windows = [], set()
    for record in records:  # one chain per window, of different question types
        if record["chain"]["window_id"] not in windows:
            windows.add(record["chain"]["window_id"])
            picked.append(chain_input(record, ROOT, JudgeParams(frame_width=128)))
    assert len(picked) >= 3
    return picked[:3]


def test_kv_cache_path_equals_the_no_cache_reference(loaded, chain_inputs):
    model, processor = loaded
    cached, reference = VSTEngine(model, processor, use_cache=True), VSTEngine(model, processor, use_cache=False)
    config = JudgeConfig(samples=2, max_thought_tokens=6, max_answer_tokens=6, temperature=0.8, top_p=0.9)
    for chain in chain_inputs:
        assert teacher_forced(cached, chain, config) == teacher_forced(reference, chain, config)
        assert own_thinking(cached, chain, config) == own_thinking(reference, chain, config)
        a = thought_likelihood(cached, chain)["mean_logprob"]
        b = thought_likelihood(reference, chain)["mean_logprob"]
        assert len(a) == len(chain.thoughts) and all(x is not None for x in a)
        assert a == pytest.approx(b, abs=1e-4)


def test_the_cache_is_really_reused_across_clips(loaded, chain_inputs):
    """The prefix (system + memory) is encoded once and extended line by line, never again."""
    model, processor = loaded
    engine = VSTEngine(model, processor, use_cache=True)
    chain = chain_inputs[0]
    cache = PrefixCache(engine)
    from curation.model.vst_protocol import MEMORY_START, memory_line, user_clip_content

    memory = MEMORY_START
    for clip, thought in zip(chain.clips, chain.thoughts):
        engine.answer_logprobs(memory, [user_clip_content(clip)], [clip], thought, cache)
        memory += memory_line(clip.start_s, clip.end_s, thought)
    final_prefix = len(cache.ids)
    # every prefix token was run through the model about once (the last line is never needed)
    assert cache.tokens_encoded <= final_prefix
    assert cache.cache.get_seq_length() == final_prefix  # the calls' own turns were cropped away


def test_cached_greedy_call_equals_transformers_generate(loaded, chain_inputs):
    """Our positions and cache handling agree with the library's own generate()."""
    model, processor = loaded
    engine = VSTEngine(model, processor, use_cache=True)
    chain = chain_inputs[1]
    from curation.model.vst_protocol import MEMORY_START, memory_line

    memory = MEMORY_START + "".join(memory_line(c.start_s, c.end_s, t) for c, t in zip(chain.clips[:-1], chain.thoughts[:-1]))
    turns = final_turns(chain.clips[-1], final_question(chain.question_time_s, chain.question))
    ours = engine.generate(memory, turns, [chain.clips[-1]], Sampling(max_new_tokens=8), PrefixCache(engine))
    prefix, rest = engine.render(memory, turns)
    enc = engine.encode(prefix + rest, [chain.clips[-1]])
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    theirs = [t for t in out[0, enc["input_ids"].shape[1] :].tolist() if t not in engine.eos_ids]
    assert ours.token_ids == theirs[: len(ours.token_ids)] and len(ours.token_ids) == len(theirs)


# ---- sampling devices (the CUDA generator bug) ------------------------------------------------
def test_own_thinking_draws_on_the_logits_device(loaded, chain_inputs, monkeypatch):
    """Every draw of a real own-thinking run uses a generator on the device of the probabilities
    it samples from (here the CPU: no GPU has run this)."""
    model, processor = loaded
    engine = VSTEngine(model, processor)
    real = torch.multinomial
    draws = []

    def spy(input, num_samples, *args, generator=None, **kwargs):
        draws.append((input.device, generator.device))
        return real(input, num_samples, *args, generator=generator, **kwargs)

    monkeypatch.setattr(torch, "multinomial", spy)
    own_thinking(engine, chain_inputs[0], JudgeConfig(samples=2, max_thought_tokens=3, max_answer_tokens=3))
    assert draws and all(tensor == gen == torch.device("cpu") for tensor, gen in draws)


class _OnCuda(torch.Tensor):
    """A CPU tensor that reports a CUDA device (and keeps reporting it through torch ops), so the
    non-CPU path of the sampler runs on a machine without a GPU."""

    @property
    def device(self):
        return torch.device("cuda", 1)

    def to(self, *args, **kwargs):
        return torch.Tensor.to(self.as_subclass(torch.Tensor), *args, **kwargs)


def test_sampling_generator_is_made_on_the_logits_non_cpu_device(monkeypatch):
    made = []

    class FakeGenerator:  # torch.Generator(device="cuda") needs a GPU; record what was asked for
        def __init__(self, device="cpu"):
            self.device = torch.device(device)
            made.append(self)

        def manual_seed(self, seed):
            self.seed = seed
            return self

    draws = []

    def fake_multinomial(input, num_samples, generator=None):
        draws.append((input.device, generator.device))
        return torch.zeros(1, dtype=torch.long)

    monkeypatch.setattr(torch, "Generator", FakeGenerator)
    monkeypatch.setattr(torch, "multinomial", fake_multinomial)
    logits = torch.tensor([0.1, 2.0, 0.3, 1.5]).as_subclass(_OnCuda)
    generators = SeededGenerators(7)
    sampling = Sampling(temperature=1.0, top_p=0.98)
    token = pick_token(logits, sampling, generators)
    pick_token(logits, sampling, generators)
    assert token == 1  # rank 0 of the sorted probabilities is token 1
    assert [g.device for g in made] == [torch.device("cuda", 1)] and made[0].seed == 7  # one per device, reused
    assert draws == [(torch.device("cuda", 1), torch.device("cuda", 1))] * 2
    # a caller's own CPU generator with CUDA logits: the probabilities move to the CPU to be drawn
    cpu = FakeGenerator("cpu")
    pick_token(logits, sampling, cpu)
    assert draws[-1] == (torch.device("cpu"), torch.device("cpu"))


# ---- VST's decoding defaults ----------------------------------------------------------------------
def test_defaults_follow_vst():
    from pipelines.stages.judge import JudgeParams

    params = JudgeParams()
    config = params.config()
    assert config.answer_sampling().temperature == 0  # greedy answers: VST's eval
    rollout = config.rollout_sampling(config.max_thought_tokens)
    assert (rollout.temperature, rollout.top_p, rollout.max_new_tokens, config.samples) == (1.0, 0.98, 1000, 8)  # VST-RL/run.sh
    assert config.visual == VisualBudget(256 * 28 * 28, 768 * 28 * 28, 8192, None)
    assert params.max_frames == 384
    for name in ("answer_temperature", "samples", "temperature", "top_p", "max_thought_tokens", "min_pixels", "max_pixels", "clip_visual_tokens"):
        assert "VST" in (JudgeParams.model_fields[name].description or "") or "qwen-vl-utils" in JudgeParams.model_fields[name].description


def test_teacher_forced_is_greedy_unless_the_recipe_samples(loaded, chain_inputs):
    """Greedy answers do not depend on the seed; a sampled answer is a recipe choice."""
    model, processor = loaded
    engine = VSTEngine(model, processor)
    chain = chain_inputs[2]
    greedy = [teacher_forced(engine, chain, JudgeConfig(max_answer_tokens=6, seed=seed))["output"] for seed in (0, 1, 2)]
    assert len(set(greedy)) == 1
    sampled = [teacher_forced(engine, chain, JudgeConfig(max_answer_tokens=6, seed=seed, answer_temperature=1.0))["output"] for seed in (0, 1, 2)]
    assert len(set(sampled)) > 1


def test_blind_answers_are_greedy_in_a_batch_or_sampled_per_chain(loaded, chain_inputs):
    from curation.model.judge import blind_batch

    model, processor = loaded
    engine = VSTEngine(model, processor)
    greedy = blind_batch(engine, chain_inputs, JudgeConfig(max_answer_tokens=5))
    assert set(greedy) == {c.chain_id for c in chain_inputs}
    sampled = JudgeConfig(max_answer_tokens=5, answer_temperature=1.0)
    first, again = blind_batch(engine, chain_inputs, sampled), blind_batch(engine, chain_inputs[::-1], sampled)
    assert first == again  # seeded per chain: the batch order does not matter
    assert {r["output"] for r in first.values()} != {r["output"] for r in greedy.values()}


# ---- VST's visual token budget ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_processor(loaded):
    """The real Qwen2.5-VL processor with a real checkpoint's pixel limits (Qwen2.5-VL-7B's
    preprocessor_config: 3136 .. 12,845,056 pixels per frame), the tiny tokenizer."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from curation.model.tiny import QWEN2_5_VL_CHAT_TEMPLATE

    _, tiny_processor = loaded
    size = {"shortest_edge": 3136, "longest_edge": 12845056}
    image = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    # cap_pixels_per_frame=False: this transformers' behaviour for a checkpoint that does not set it
    video = Qwen2VLVideoProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2, do_sample_frames=False, cap_pixels_per_frame=False)
    return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tiny_processor.tokenizer, video_processor=video, chat_template=QWEN2_5_VL_CHAT_TEMPLATE)


def _processor_tokens(engine: VSTEngine, clip: ClipInput) -> int:
    """Visual tokens the processor makes of one clip, through the engine's own encode()."""
    enc = engine.encode("<|vision_start|><|video_pad|><|vision_end|>", [clip])
    return int(enc["video_grid_thw"].prod(dim=-1).sum()) // 4  # 2 x 2 patches merge into one token


def test_a_long_high_resolution_window_stays_within_the_visual_budget(loaded, checkpoint_processor):
    model, _ = loaded
    engine = VSTEngine(model, checkpoint_processor)
    budget = VisualBudget()
    rng = np.random.default_rng(0)
    # native 1080p with no budget: every frame pair costs 2,6xx tokens, a 192 s window 500k
    native = ClipInput(0.0, 1.0, rng.integers(0, 255, (2, 1080, 1920, 3), dtype=np.uint8))
    per_pair_native = _processor_tokens(engine, native)
    assert per_pair_native > 2500 and per_pair_native * 192 > 480_000
    # a 192 s window (384 frames at 2 fps) of 16 clips of 24 frames: one size for the window
    h, w = window_frame_size(1080, 1920, frames=384, clips=16, budget=budget)
    assert h % 28 == 0 and w % 28 == 0 and abs(w / h - 1920 / 1080) < 0.1
    clip = ClipInput(0.0, 12.0, rng.integers(0, 255, (24, h, w, 3), dtype=np.uint8))
    per_clip = _processor_tokens(engine, clip)
    assert per_clip == visual_tokens(24, h, w) <= budget.clip_visual_tokens
    assert 16 * per_clip <= 16 * budget.clip_visual_tokens
    assert per_clip / 12 <= budget.max_pixels // (28 * 28)  # per frame pair: at most 768 tokens
    # fewer, longer clips: the per-window budget binds (8,192 per clip, still one size)
    h2, w2 = window_frame_size(1080, 1920, frames=384, clips=8, budget=budget)
    assert (h2, w2) < (h, w) and 192 * (h2 // 28) * (w2 // 28) <= 8 * 8192
    # clips averaging over ~30 s: the per-frame floor (min_pixels) wins, as in VST's eval's resize
    h4, w4 = window_frame_size(1080, 1920, frames=384, clips=4, budget=budget)
    # (smart_resize floors to multiples of 28, so "about" 256 tokens per frame pair: 12 x 21 here)
    assert (h4 // 28) * (w4 // 28) >= 250 and 192 * (h4 // 28) * (w4 // 28) > 4 * 8192
    # frames handed over at native size are brought within the budget before the processor
    fitted = fit_clips([native, ClipInput(1.0, 2.0, native.frames)], VisualBudget(max_window_visual_tokens=700))
    assert fitted[0].frames.shape[1:3] == fitted[1].frames.shape[1:3]
    assert sum(_processor_tokens(engine, c) for c in fitted) <= 700
    # the window's total cap (VST's SFT loader budget) also binds
    capped = VisualBudget(max_window_visual_tokens=24576, min_pixels=100 * 28 * 28)
    h3, w3 = window_frame_size(1080, 1920, frames=384, clips=16, budget=capped)
    assert 192 * (h3 // 28) * (w3 // 28) <= 24576


def test_small_videos_are_scaled_up_to_vsts_minimum():
    h, w = window_frame_size(240, 320, frames=20, clips=2, budget=VisualBudget())
    assert h * w >= 256 * 28 * 28 and (h, w) == (392, 532)


# ---- frames counted as VST's loader counts them ----------------------------------------------
def test_clip_frames_are_the_loaders_by_timestamp(demo):
    """The judge's frames per clip: the window's 2 fps frames picked by decord's timestamps (both
    edges in), sliced per span; equal to the clips table's indices; and for a window that does not
    start at 0 the edge frames at both ends are in."""
    from curation.video.decode import open_reader
    from curation.video.segment import video_frame_times, vst_window_frames
    from pipelines.stages.judge import JudgeParams, chain_input, clip_frame_indices, load_judge_inputs

    run_dir, _ = demo
    params = JudgeParams(frame_width=64)
    record = sorted(load_judge_inputs(run_dir, params), key=lambda r: (-len(r["chain"]["thoughts"]), r["chain_id"]))[0]
    chain = record["chain"]
    reader = open_reader(chain["video_path"])
    spans = [(t["start_s"], t["end_s"]) for t in chain["thoughts"]]
    ours = clip_frame_indices(reader, (chain["start_s"], chain["end_s"]), spans, 384)
    assert ours == record["clip_frames"]  # the clips table (constant-rate timestamps) agrees
    n = len(vst_window_frames(chain["start_s"], chain["end_s"], video_frame_times(reader)))
    vs, ve = chain["start_s"], chain["end_s"]
    assert [len(c) for c in ours] == [int(n * (e - vs) / (ve - vs)) - int(n * (s - vs) / (ve - vs)) for s, e in spans]
    built = chain_input(record, ROOT, params)
    assert [len(c.frames) for c in built.clips] == [len(c) for c in ours]
    # a window from 4 s to 14 s of the same video: 21 timestamps 4.0 ... 14.0, padded to 22
    fps = reader.get_avg_fps()
    inner = {**chain, "start_s": 4.0, "end_s": 14.0, "thoughts": [{**chain["thoughts"][0], "start_s": 4.0, "end_s": 9.0}, {**chain["thoughts"][0], "start_s": 9.0, "end_s": 14.0}]}
    first, second = clip_frame_indices(reader, (4.0, 14.0), [(4.0, 9.0), (9.0, 14.0)], 384)
    assert len(first) + len(second) == 22 and len(first) == 11
    assert first[0] == round(4.0 * fps) - 1 and second[-1] == round(14.0 * fps) - 1  # frames ENDING at 4.0 s and 14.0 s
    built = chain_input({**record, "chain": inner, "clip_frames": [[0], [0]]}, ROOT, params)
    assert [len(c.frames) for c in built.clips] == [11, 11]


def test_answer_parsing_follows_the_reward_rules():
    assert extract_answer("multiple_choice", "I think \\boxed{B. a square}") == "B"
    assert extract_answer("multiple_choice", "A is wrong, so C") == "A"  # no box: first standalone letter
    assert extract_answer("yes_no", "\\boxed{yes}") == "yes"
    assert extract_answer("numerical", "\\boxed{3.0}") == "3"
    assert answer_is_right("numerical", "so \\boxed{12}", "12")
    assert not answer_is_right("multiple_choice", "nothing here", "B")


def _result(blind_right: bool, rate: float, means: list[float]) -> ChainResult:
    return ChainResult(
        "c1",
        {
            "teacher_forced": {"output": "\\boxed{B}", "right": True},
            "own_thinking": {"pass_rate": rate, "samples": []},
            "blind": {"output": "B", "right": blind_right},
            "likelihood": {"mean_logprob": means},
        },
    )


def test_verdict_rules():
    rules = JudgeRules()
    rows = {r["check"]: r for r in verdicts(_result(True, 0.5, [-2.0, -2.1, -1.9, -2.05]), "multiple_choice", rules, "tiny")}
    assert set(rows) == {"judge_teacher_forced", "judge_own_thinking", "judge_blind", "judge_thought_likelihood"}
    assert rows["judge_blind"]["passed"] is False and rows["judge_blind"]["reason"] == "judge_answered_blind"
    assert rows["judge_own_thinking"]["passed"] is True and rows["judge_own_thinking"]["score"] == 0.5
    assert rows["judge_thought_likelihood"]["passed"] is True
    assert rows["judge_teacher_forced"]["passed"] is True and rows["judge_teacher_forced"]["reason"] is None
    # a numerical question answered blind is kept by default; pass rates 0 and 1 carry no RL signal
    numeric = {r["check"]: r for r in verdicts(_result(True, 1.0, [-2.0, -2.1, -9.0, -2.05]), "numerical", rules, "tiny")}
    assert numeric["judge_blind"]["passed"] is True
    assert numeric["judge_own_thinking"]["reason"] == "judge_always_solved"
    assert numeric["judge_thought_likelihood"]["passed"] is False
    assert json.loads(numeric["judge_thought_likelihood"]["details"])["flagged"] == [2]
    never = {r["check"]: r for r in verdicts(_result(False, 0.0, [-1.0]), "yes_no", rules, "tiny")}
    assert never["judge_own_thinking"]["reason"] == "judge_never_solved"
    untrained = verdicts(_result(False, 0.5, [-1.0]), "yes_no", rules, "tiny", untrained=True)
    assert {json.loads(r["details"])["untrained"] for r in untrained} == {True}
    assert {json.loads(r["details"])["untrained"] for r in never.values()} == {False}
    sft_rule = JudgeRules(pass_rate_rule="min", min_pass_rate=0.5)
    assert {r["check"]: r for r in verdicts(_result(False, 1.0, [-1.0]), "yes_no", sft_rule, "tiny")}["judge_own_thinking"]["passed"]


def test_judge_stage_writes_verdicts(demo, tiny):
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages.judge import STAGE, JudgeParams, load_judge_inputs

    run_dir, corpus = demo
    params = JudgeParams(model=str(tiny), samples=2, max_thought_tokens=4, max_answer_tokens=4, frame_width=128)
    records = load_judge_inputs(run_dir, params)
    assert len(records) == len(corpus["chains"])
    good = sorted(records, key=lambda r: r["chain_id"])[:6]
    broken_video = {**good[0], "chain_id": "bad-video", "chain": {**good[0]["chain"], "chain_id": "bad-video", "video_path": "/nonexistent/v.mp4"}}
    missing_clip = {
        **good[1],
        "chain_id": "bad-clip",
        "chain": {**good[1]["chain"], "chain_id": "bad-clip"},
        "clip_frames": [None] * len(good[1]["clip_frames"]),
    }
    ctx = StageContext(run=run_dir.name, run_root=run_dir.root, project_root=ROOT)
    summary = LocalRunner(workers=1, part_size=4, progress=False).run_stage(STAGE, params, run_dir, ctx, [*good, broken_video, missing_clip])
    assert summary["failed_by_reason"] == {"judge_clip_missing": 1, "judge_video_missing": 1}
    rows = run_dir.read_rows("judge_verdicts")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4 * len(good)
    for row in ok:
        assert row["checker_version"] == "judge-2" and row["run"] == run_dir.name
        details = json.loads(row["details"])
        assert details["model"] == "model" and details["untrained"] is True  # init_tiny's random weights
        assert details["decoding"]["answer"] == "greedy" and details["frame_size"][1] <= 128
        assert len(details["frames_per_clip"]) >= 1 and all(n > 0 for n in details["frames_per_clip"])
        assert (row["reason"] is None) == row["passed"]
    by_check = {}
    for row in ok:
        by_check.setdefault(row["check"], []).append(row)
    assert {len(v) for v in by_check.values()} == {len(good)}
    assert all(0.0 <= r["score"] <= 1.0 for r in by_check["judge_own_thinking"])
    assert all(r["score"] < 0 for r in by_check["judge_thought_likelihood"])
    # rerun: nothing recomputed
    again = LocalRunner(workers=1, part_size=4, progress=False).run_stage(STAGE, params, run_dir, ctx, [*good])
    assert again.get("skipped") is True


def test_judge_is_a_valid_recipe_stage():
    from pipelines.recipe import RecipeError, parse_recipe

    base = {"name": "j", "inputs": [{"glob": "data/samples/synthetic/*.mp4"}], "stages": [{"stage": "ingest"}]}
    recipe = parse_recipe({**base, "stages": [{"stage": "judge", "model": "tiny", "samples": 3, "pass_rate_rule": "min"}]})
    assert recipe.stages[0].samples == 3
    with pytest.raises(RecipeError, match="samlpes"):
        parse_recipe({**base, "stages": [{"stage": "judge", "samlpes": 3}]})


def test_judge_runs_from_a_recipe(tmp_path, tiny):
    """`vstw run` with a judge stage: the demo recipe's stages, chains in between, then judge."""
    import yaml

    from _model_fixtures import build_corpus, write_tables
    from pipelines.recipe import parse_recipe
    from pipelines.rundir import RunDir
    from pipelines.run import run_recipe

    data = yaml.safe_load((ROOT / "tests" / "recipes" / "fixture-demo.yaml").read_text())
    data["stages"] = [s for s in data["stages"] if s["stage"] in ("ingest", "segment")]
    data["stages"].append({"stage": "judge", "model": str(tiny), "samples": 2, "max_thought_tokens": 3, "max_answer_tokens": 3, "frame_width": 128})
    recipe = parse_recipe(data)
    run_recipe(recipe, "r", ROOT, tmp_path, progress=False, echo=lambda *_: None, until="segment")
    run_dir = RunDir(tmp_path / "r")
    chains = build_corpus(run_dir)["chains"][:4]  # chains appear between segment and judge (the think stage's job)
    write_tables(run_dir, {"chains": chains})
    summaries = run_recipe(recipe, "r", ROOT, tmp_path, progress=False, echo=lambda *_: None)
    assert summaries["judge"]["ok"] == 4 * len(chains) and summaries["judge"]["failed"] == 0
    assert summaries["segment"].get("skipped") is True  # resumed, not recomputed
    assert {r["chain_id"] for r in run_dir.read_rows("judge_verdicts")} == {c["chain_id"] for c in chains}
