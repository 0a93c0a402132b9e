"""The VST-model judge: the streaming protocol with KV-cache reuse equals a no-cache reference,
and the judge stage writes verdicts for real chains of a real demo run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _model_fixtures import demo_run_with_chains, tiny_model
from curation.model.judge import ChainResult, JudgeConfig, JudgeRules, own_thinking, teacher_forced, thought_likelihood, verdicts
from curation.model.vst_protocol import PrefixCache, Sampling, VSTEngine, answer_is_right, extract_answer, final_question, final_turns

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
            picked.append(chain_input(record, ROOT, 128))
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
        assert row["checker_version"] == "judge-1" and row["run"] == run_dir.name
        details = json.loads(row["details"])
        assert details["model"] == "model"
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

    data = yaml.safe_load((ROOT / "pipelines" / "recipes" / "demo.yaml").read_text())
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
