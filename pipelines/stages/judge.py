"""judge: score every chain with a VST model run as VST runs it -> `judge_verdicts` (the schema of
`verdicts`, one row per chain x measurement; a table of its own since the rule checks own `verdicts`).

Each input record is one chain with its clips' VST frame indices (from the clips table); frames are
decoded with decord, the model is loaded once per process (kept across batches) and used by one
thread at a time. The measurements and the verdict rules live in curation.model.judge.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from pydantic import Field

from curation.model.judge import MODES, ChainInput, JudgeConfig, JudgeRules, judge_chains, verdicts
from curation.model.vst_protocol import ClipInput, VSTEngine
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed

TINY = "tiny"  # model: tiny -> <project>/data/models/tiny, built on first use (offline)


class JudgeParams(StageParams):
    stage: Literal["judge"] = "judge"
    model: str = Field(TINY, description="folder of a Qwen2.5-VL / VST checkpoint (relative to the project), or 'tiny'")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")
    modes: list[Literal["teacher_forced", "own_thinking", "blind", "likelihood"]] = Field(default_factory=lambda: list(MODES))
    samples: int = Field(4, ge=1, le=64, description="own-thinking samples per chain (k)")
    temperature: float = Field(0.7, gt=0, le=2.0)
    top_p: float = Field(0.9, gt=0, le=1.0)
    max_thought_tokens: int = Field(48, ge=1, le=1024)
    max_answer_tokens: int = Field(16, ge=1, le=1024)
    prompt_style: Literal["inference", "rl_type1"] = "inference"
    seed: int = 0
    frame_width: int = Field(0, ge=0, description="decode frames at most this wide (0: native); the processor resizes anyway")
    reuse_kv_cache: bool = Field(True, description="keep the memory's KV cache across clips (False: re-encode every call)")
    drop_blind_multiple_choice: bool = True
    drop_blind_all_types: bool = False
    pass_rate_rule: Literal["rl_band", "min"] = "rl_band"
    min_pass_rate: float = Field(0.5, ge=0, le=1)
    likelihood_z_max: float = Field(3.5, gt=0)
    min_thought_logprob: float | None = None

    def config(self) -> JudgeConfig:
        return JudgeConfig(
            tuple(self.modes),
            self.samples,
            self.temperature,
            self.top_p,
            self.max_thought_tokens,
            self.max_answer_tokens,
            self.prompt_style,
            self.seed,
        )

    def rules(self) -> JudgeRules:
        return JudgeRules(
            self.drop_blind_multiple_choice,
            self.drop_blind_all_types,
            self.pass_rate_rule,
            self.min_pass_rate,
            self.likelihood_z_max,
            self.min_thought_logprob,
        )


# ---- inputs -----------------------------------------------------------------------------------
def load_judge_inputs(run_dir: RunDir, params: JudgeParams) -> list[dict]:
    """One record per ok chain, with the VST frame indices of each thought's clip."""
    chains = [c for c in run_dir.read_rows("chains") if c["status"] == "ok"]
    frames = {}
    if run_dir.has_table("clips"):
        for clip in run_dir.read_rows("clips", ["clip_id", "vst_frame_indices", "status"]):
            if clip["status"] == "ok":
                frames[clip["clip_id"]] = clip["vst_frame_indices"] or []
    return [{"chain_id": c["chain_id"], "chain": c, "clip_frames": [frames.get(t.get("clip_id")) for t in c.get("thoughts") or []]} for c in chains]


# ---- the model, once per process ---------------------------------------------------------------
_MODELS: dict[tuple[str, str], tuple] = {}
_LOCK = threading.Lock()


def model_path(params: JudgeParams, project_root: Path) -> Path:
    if params.model == TINY:
        path = project_root / "data" / "models" / "tiny"
        if not (path / "config.json").exists():
            from curation.model.tiny import init_tiny

            init_tiny(path)
        return path
    path = Path(params.model)
    return path if path.is_absolute() else project_root / path


def get_model(path: Path, device: str):
    from curation.model.tiny import load_model

    key = (str(path), device)
    if key not in _MODELS:
        _MODELS[key] = load_model(path, device=None if device == "auto" else device)
    return _MODELS[key]


# ---- one chain -> ChainInput ------------------------------------------------------------------
class ChainInputError(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def chain_input(record: dict, project_root: Path, frame_width: int) -> ChainInput:
    from curation.formats.question import ground_truth, prompt_text
    from curation.video.decode import read_frames

    chain = record["chain"]
    thoughts = chain.get("thoughts") or []
    if not thoughts:
        raise ChainInputError("judge_no_thoughts", f"chain {chain['chain_id']}: no thoughts")
    missing = [t.get("clip_id") for t, f in zip(thoughts, record["clip_frames"]) if f is None]
    if missing:
        raise ChainInputError("judge_clip_missing", f"chain {chain['chain_id']}: clips not in the clips table: {missing}")
    qa = chain.get("qa") or {}
    gold = ground_truth(qa)
    if gold is None:
        raise ChainInputError("judge_no_ground_truth", f"chain {chain['chain_id']}: answer {qa.get('answer')!r} does not fit type {qa.get('type')!r}")
    path = Path(chain["video_path"])
    path = path if path.is_absolute() else project_root / path
    if not path.is_file():
        raise ChainInputError("judge_video_missing", f"chain {chain['chain_id']}: video not found: {path}")
    wanted = sorted({i for f in record["clip_frames"] for i in f})
    try:
        decoded = read_frames(path, wanted, target_width=frame_width) if wanted else None
    except Exception as err:  # a decoder error costs this chain only
        raise ChainInputError("judge_decode_error", f"chain {chain['chain_id']}: {path}: {str(err).splitlines()[0][:300]}") from None
    where = {index: k for k, index in enumerate(wanted)}
    clips = [ClipInput(t["start_s"], t["end_s"], decoded[[where[i] for i in f]] if f else None) for t, f in zip(thoughts, record["clip_frames"])]
    return ChainInput(chain["chain_id"], qa.get("type") or "", prompt_text(qa), gold, clips, [t["text"] for t in thoughts])


# ---- the stage function ------------------------------------------------------------------------
def judge_batch(records: list[dict], params: JudgeParams, ctx: StageContext) -> list[dict]:
    rows, ready = [], []
    for record in records:
        try:
            ready.append(chain_input(record, ctx.project_root, params.frame_width))
        except ChainInputError as err:
            rows.append(judge_failed_row(record, err.reason, str(err)))
    if not ready:
        return rows
    path = model_path(params, ctx.project_root)
    types = {c.chain_id: c.qa_type for c in ready}
    with _LOCK:
        model, processor = get_model(path, params.device)
        engine = VSTEngine(model, processor, use_cache=params.reuse_kv_cache)
        results = judge_chains(engine, ready, params.config())
    for result in results:
        rows.extend(verdicts(result, types[result.chain_id], params.rules(), path.name))
    return rows


def judge_failed_row(record: dict, reason: str, message: str) -> dict:
    return failed(reason, message, chain_id=record.get("chain_id"), check="judge", checker_version="judge-1")


STAGE = Stage(
    name="judge",
    output_table="judge_verdicts",
    fn=judge_batch,
    params_model=JudgeParams,
    key="chain_id",
    input_table="chains",
    kind="io",  # one model per process, used under a lock; threads overlap frame decoding only
    failed_row=judge_failed_row,
    load_inputs=load_judge_inputs,
)
