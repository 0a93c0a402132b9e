"""The VST-model judge: does a model, run exactly as VST runs (spec section 4), learn from a chain?

Four measurements per chain, each a plain function over a `ChainInput` (clips already decoded):
1. teacher-forced: the chain's own thoughts as memory, then the last clip and the question:
   is the model's answer right?
2. own thinking: the model writes its own thoughts clip by clip, then answers; k samples
   (temperature, top-p, as VST's RL rollouts): the pass rate;
3. blind: the question with the initial memory and no video: answerable from text alone?
   (batched over chains: the prompts are short and carry no video);
4. thought likelihood: each thought's mean token log-probability given its clip and the memory
   of the thoughts before it.
`verdicts` turns the measurements into verdict rows with the recipe's rules.

Decoding follows VST by default (docs/model.md lists the sources): answers that stand for VST's
eval (teacher-forced, blind) are greedy; the own-thinking rollouts sample as VST's RL does
(temperature 1.0, top-p 0.98, at most 1,000 new tokens, 8 rollouts per item).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field, replace

from curation.model.vst_protocol import (
    MEMORY_START,
    ClipInput,
    PrefixCache,
    Sampling,
    SeededGenerators,
    VisualBudget,
    VSTEngine,
    answer_is_right,
    final_question,
    final_turns,
    fit_clips,
    memory_line,
    stream_thoughts,
    user_clip_content,
)

JUDGE_VERSION = "judge-2"  # judge-2: VST decoding defaults, visual budget, frames by timestamp
MODES = ("teacher_forced", "own_thinking", "blind", "likelihood")


@dataclass(frozen=True)
class JudgeConfig:
    """How the model is run. Defaults: VST's own settings (pipelines/stages/judge.py names each source)."""

    modes: tuple[str, ...] = MODES
    samples: int = 8  # k of the own-thinking pass rate (VST-RL: rollout.n=8)
    temperature: float = 1.0  # own-thinking rollouts (VST-RL: rollout.temperature=1)
    top_p: float = 0.98  # own-thinking rollouts (VST-RL: rollout.top_p=0.98)
    max_thought_tokens: int = 1000  # per sampled thought (VST-RL: max_response_length=1000)
    max_answer_tokens: int = 1000  # per answer, greedy or sampled
    prompt_style: str = "inference"  # or "rl_type1" (asks for \boxed{})
    seed: int = 0
    answer_temperature: float = 0.0  # teacher-forced and blind answers: 0 = greedy (VST's eval)
    answer_top_p: float = 1.0
    visual: VisualBudget = VisualBudget()

    def rollout_sampling(self, max_new_tokens: int) -> Sampling:
        return Sampling(self.temperature, self.top_p, max_new_tokens)

    def answer_sampling(self) -> Sampling:
        return Sampling(self.answer_temperature, self.answer_top_p, self.max_answer_tokens)

    def decoding(self) -> dict:
        """What the verdict rows record about how the answers were decoded."""
        answer = "greedy" if self.answer_temperature <= 0 else f"sampled t={self.answer_temperature} top_p={self.answer_top_p}"
        return {
            "answer": answer,
            "rollout": f"sampled t={self.temperature} top_p={self.top_p}",
            "max_answer_tokens": self.max_answer_tokens,
            "max_thought_tokens": self.max_thought_tokens,
        }


@dataclass(frozen=True)
class JudgeRules:
    drop_blind_multiple_choice: bool = True  # MC answered right with no video: drop
    drop_blind_all_types: bool = False  # the same for every question type
    pass_rate_rule: str = "rl_band"  # rl_band: keep 0 < rate < 1; min: keep rate >= min_pass_rate
    min_pass_rate: float = 0.5
    likelihood_z_max: float = 3.5  # robust z-score (median/MAD within the chain) below -z_max: outlier
    min_thought_logprob: float | None = None  # absolute floor on a thought's mean log-probability


@dataclass
class ChainInput:
    chain_id: str
    qa_type: str
    question: str  # with its options, as shown to the model
    gold: str
    clips: list[ClipInput]
    thoughts: list[str]  # one per clip, in order

    @property
    def question_time_s(self) -> float:
        return self.clips[-1].end_s


@dataclass
class ChainResult:
    chain_id: str
    measurements: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # about the run (frames, decoding), in every verdict's details


def chain_seed(chain_id: str, seed: int) -> int:
    """Per-chain sampling seed: reruns and batch order give the same samples."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{chain_id}".encode()).digest()[:8], "big") % (2**63)


# ---- the four measurements --------------------------------------------------------------------
def teacher_forced(engine: VSTEngine, chain: ChainInput, config: JudgeConfig) -> dict:
    """The chain's thoughts (all but the last clip's) as memory, then last clip + question;
    greedy by default, as VST's eval answers."""
    cache = PrefixCache(engine)
    memory = MEMORY_START + "".join(memory_line(c.start_s, c.end_s, t) for c, t in zip(chain.clips[:-1], chain.thoughts[:-1]))
    question = final_question(chain.question_time_s, chain.question, config.prompt_style)
    generator = SeededGenerators(chain_seed(chain.chain_id, config.seed))  # used only when answers are sampled
    out = engine.generate(memory, final_turns(chain.clips[-1], question), [chain.clips[-1]], config.answer_sampling(), cache, generator)
    return {"output": out.text, "right": answer_is_right(chain.qa_type, out.text, chain.gold)}


def own_thinking(engine: VSTEngine, chain: ChainInput, config: JudgeConfig) -> dict:
    """k rollouts, each sampled as VST's RL samples them: the model's own thought for every clip
    but the last, then the answer. The draws are seeded per chain, on the logits' device."""
    generator = SeededGenerators(chain_seed(chain.chain_id, config.seed))
    question = final_question(chain.question_time_s, chain.question, config.prompt_style)
    thought_sampling = config.rollout_sampling(config.max_thought_tokens)
    answer_sampling = config.rollout_sampling(config.max_answer_tokens)
    samples = []
    for _ in range(config.samples):
        memory, thoughts, cache = stream_thoughts(engine, chain.clips, thought_sampling, generator)
        out = engine.generate(memory, final_turns(chain.clips[-1], question), [chain.clips[-1]], answer_sampling, cache, generator)
        samples.append({"thoughts": thoughts, "output": out.text, "right": answer_is_right(chain.qa_type, out.text, chain.gold)})
    rate = sum(s["right"] for s in samples) / len(samples) if samples else 0.0
    return {"pass_rate": rate, "samples": samples}


def thought_likelihood(engine: VSTEngine, chain: ChainInput) -> dict:
    """Mean token log-probability of each thought given its clip and the memory before it; the
    memory grows by one line per clip, so the prefix cache serves every thought of the chain."""
    cache = PrefixCache(engine)
    memory, means = MEMORY_START, []
    for clip, thought in zip(chain.clips, chain.thoughts):
        logprobs = engine.answer_logprobs(memory, [user_clip_content(clip)], [clip], thought, cache)
        means.append(sum(logprobs) / len(logprobs) if logprobs else None)
        memory += memory_line(clip.start_s, clip.end_s, thought)
    return {"mean_logprob": means}


def blind_messages(chain: ChainInput, config: JudgeConfig) -> tuple[str, list[list[dict]]]:
    """(memory, turns) of the blind call: the initial memory and the question, no video."""
    question = final_question(chain.question_time_s, chain.question, config.prompt_style)
    return MEMORY_START, [[{"type": "text", "text": question}]]


def blind_batch(engine: VSTEngine, chains: list[ChainInput], config: JudgeConfig) -> dict[str, dict]:
    """The question with the initial memory and no video. Greedy (the default): many chains in
    one padded batch; sampled: chain by chain, seeded per chain (a batch would share one stream)."""
    import torch

    if not chains:
        return {}
    if config.answer_temperature > 0:
        results = {}
        for chain in chains:
            memory, turns = blind_messages(chain, config)
            out = engine.generate(memory, turns, [], config.answer_sampling(), None, SeededGenerators(chain_seed(chain.chain_id, config.seed)))
            results[chain.chain_id] = {"output": out.text, "right": answer_is_right(chain.qa_type, out.text, chain.gold)}
        return results
    processor, tokenizer = engine.processor, engine.tokenizer
    texts = []
    for chain in chains:
        memory, turns = blind_messages(chain, config)
        messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "previous text", "content": memory},
            *({"role": "user", "content": turn} for turn in turns),
        ]
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues every row from its last real token
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(engine.device)
    finally:
        tokenizer.padding_side = side
    with torch.no_grad():
        out = engine.model.generate(
            **enc,
            max_new_tokens=config.max_answer_tokens,
            do_sample=False,
            eos_token_id=sorted(engine.eos_ids),
            pad_token_id=tokenizer.pad_token_id,
        )
    results = {}
    for chain, row in zip(chains, out[:, enc["input_ids"].shape[1] :]):
        text = tokenizer.decode(row, skip_special_tokens=True)
        results[chain.chain_id] = {"output": text, "right": answer_is_right(chain.qa_type, text, chain.gold)}
    return results


def chain_info(chain: ChainInput, config: JudgeConfig) -> dict:
    """What every verdict of the chain records about the run: frames per clip and their size."""
    sized = [c.frames for c in chain.clips if c.has_video]
    return {
        "frames_per_clip": [len(c.frames) if c.has_video else 0 for c in chain.clips],
        "frame_size": list(sized[0].shape[1:3]) if sized else None,
        "decoding": config.decoding(),
    }


def judge_chains(engine: VSTEngine, chains: list[ChainInput], config: JudgeConfig) -> list[ChainResult]:
    # Frames go to the processor within VST's visual budget, whoever decoded them.
    chains = [replace(c, clips=fit_clips(c.clips, config.visual)) for c in chains]
    results = [ChainResult(c.chain_id, info=chain_info(c, config)) for c in chains]
    if "blind" in config.modes:
        blind = blind_batch(engine, chains, config)
        for r in results:
            r.measurements["blind"] = blind[r.chain_id]
    for chain, result in zip(chains, results):
        if "teacher_forced" in config.modes:
            result.measurements["teacher_forced"] = teacher_forced(engine, chain, config)
        if "own_thinking" in config.modes:
            result.measurements["own_thinking"] = own_thinking(engine, chain, config)
        if "likelihood" in config.modes:
            result.measurements["likelihood"] = thought_likelihood(engine, chain)
    return results


# ---- verdicts ---------------------------------------------------------------------------------
def likelihood_outliers(means: list[float | None], rules: JudgeRules) -> tuple[list[int], list[float | None]]:
    """Indices of outlier thoughts and the robust z-scores (median/MAD within the chain)."""
    values = [m for m in means if m is not None]
    zs: list[float | None] = [None] * len(means)
    if len(values) >= 3:
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values) * 1.4826
        for i, m in enumerate(means):
            if m is not None:
                zs[i] = (m - median) / mad if mad > 1e-9 else 0.0
    flagged = [
        i
        for i, m in enumerate(means)
        if m is None
        or (zs[i] is not None and zs[i] < -rules.likelihood_z_max)
        or (rules.min_thought_logprob is not None and m < rules.min_thought_logprob)
    ]
    return flagged, zs


def verdicts(result: ChainResult, qa_type: str, rules: JudgeRules, model_name: str, untrained: bool = False) -> list[dict]:
    """One verdict row per measurement; `reason` says why a chain does not pass. `details` names
    the model and says whether it is untrained (random weights: the export reports such verdicts
    and, unless the recipe says otherwise, does not exclude on them)."""
    rows = []

    def row(check: str, passed: bool, score: float, reason: str | None, details: dict) -> dict:
        return {
            "chain_id": result.chain_id,
            "check": check,
            "passed": passed,
            "score": float(score),
            "details": json.dumps({"model": model_name, "untrained": untrained, **result.info, **details}, ensure_ascii=False),
            "checker_version": JUDGE_VERSION,
            "status": "ok",
            "reason": None if passed else reason,
        }

    m = result.measurements
    if "teacher_forced" in m:
        tf = m["teacher_forced"]
        rows.append(row("judge_teacher_forced", tf["right"], float(tf["right"]), "judge_answer_wrong", tf))
    if "own_thinking" in m:
        own = m["own_thinking"]
        rate = own["pass_rate"]
        if rules.pass_rate_rule == "rl_band":
            passed = 0.0 < rate < 1.0
            reason = "judge_never_solved" if rate <= 0.0 else "judge_always_solved"
        else:
            passed = rate >= rules.min_pass_rate
            reason = "judge_pass_rate_low"
        rows.append(row("judge_own_thinking", passed, rate, reason, own))
    if "blind" in m:
        blind = m["blind"]
        droppable = rules.drop_blind_all_types or (rules.drop_blind_multiple_choice and qa_type == "multiple_choice")
        passed = not (blind["right"] and droppable)
        rows.append(row("judge_blind", passed, float(blind["right"]), "judge_answered_blind", blind))
    if "likelihood" in m:
        means = m["likelihood"]["mean_logprob"]
        flagged, zs = likelihood_outliers(means, rules)
        known = [x for x in means if x is not None]
        score = sum(known) / len(known) if known else float("nan")
        details = {"mean_logprob": means, "robust_z": zs, "flagged": flagged}
        rows.append(row("judge_thought_likelihood", not flagged, score, "judge_thought_outlier", details))
    return rows
