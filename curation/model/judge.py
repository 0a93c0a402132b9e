"""The VST-model judge: does a model, run exactly as VST runs (spec section 4), learn from a chain?

Four measurements per chain, each a plain function over a `ChainInput` (clips already decoded):
1. teacher-forced: the chain's own thoughts as memory, then the last clip and the question:
   is the model's answer right?
2. own thinking: the model writes its own thoughts clip by clip, then answers; k samples
   (temperature, top-p): the pass rate;
3. blind: the question with the initial memory and no video: answerable from text alone?
   (batched over chains: the prompts are short and carry no video);
4. thought likelihood: each thought's mean token log-probability given its clip and the memory
   of the thoughts before it.
`verdicts` turns the measurements into verdict rows with the recipe's rules.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field

from curation.model.vst_protocol import (
    MEMORY_START,
    ClipInput,
    PrefixCache,
    Sampling,
    VSTEngine,
    answer_is_right,
    final_question,
    final_turns,
    memory_line,
    stream_thoughts,
    user_clip_content,
)

JUDGE_VERSION = "judge-1"
MODES = ("teacher_forced", "own_thinking", "blind", "likelihood")


@dataclass(frozen=True)
class JudgeConfig:
    modes: tuple[str, ...] = MODES
    samples: int = 4  # k of the own-thinking pass rate
    temperature: float = 0.7
    top_p: float = 0.9
    max_thought_tokens: int = 48
    max_answer_tokens: int = 16
    prompt_style: str = "inference"  # or "rl_type1" (asks for \boxed{})
    seed: int = 0


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


def chain_seed(chain_id: str, seed: int) -> int:
    """Per-chain sampling seed: reruns and batch order give the same samples."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{chain_id}".encode()).digest()[:8], "big") % (2**63)


# ---- the four measurements --------------------------------------------------------------------
def teacher_forced(engine: VSTEngine, chain: ChainInput, config: JudgeConfig) -> dict:
    """The chain's thoughts (all but the last clip's) as memory, then last clip + question."""
    cache = PrefixCache(engine)
    memory = MEMORY_START + "".join(memory_line(c.start_s, c.end_s, t) for c, t in zip(chain.clips[:-1], chain.thoughts[:-1]))
    question = final_question(chain.question_time_s, chain.question, config.prompt_style)
    out = engine.generate(memory, final_turns(chain.clips[-1], question), [chain.clips[-1]], Sampling(max_new_tokens=config.max_answer_tokens), cache)
    return {"output": out.text, "right": answer_is_right(chain.qa_type, out.text, chain.gold)}


def own_thinking(engine: VSTEngine, chain: ChainInput, config: JudgeConfig) -> dict:
    import torch

    generator = torch.Generator().manual_seed(chain_seed(chain.chain_id, config.seed))
    question = final_question(chain.question_time_s, chain.question, config.prompt_style)
    thought_sampling = Sampling(config.temperature, config.top_p, config.max_thought_tokens)
    answer_sampling = Sampling(config.temperature, config.top_p, config.max_answer_tokens)
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


def blind_batch(engine: VSTEngine, chains: list[ChainInput], config: JudgeConfig) -> dict[str, dict]:
    """The question with the initial memory and no video, for many chains in one padded batch."""
    import torch

    if not chains:
        return {}
    processor, tokenizer = engine.processor, engine.tokenizer
    texts = []
    for chain in chains:
        question = final_question(chain.question_time_s, chain.question, config.prompt_style)
        messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "previous text", "content": MEMORY_START},
            {"role": "user", "content": [{"type": "text", "text": question}]},
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


def judge_chains(engine: VSTEngine, chains: list[ChainInput], config: JudgeConfig) -> list[ChainResult]:
    results = [ChainResult(c.chain_id) for c in chains]
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


def verdicts(result: ChainResult, qa_type: str, rules: JudgeRules, model_name: str) -> list[dict]:
    """One verdict row per measurement; `reason` says why a chain does not pass."""
    rows = []

    def row(check: str, passed: bool, score: float, reason: str | None, details: dict) -> dict:
        return {
            "chain_id": result.chain_id,
            "check": check,
            "passed": passed,
            "score": float(score),
            "details": json.dumps({"model": model_name, **details}, ensure_ascii=False),
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
