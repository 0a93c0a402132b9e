"""judge: score every chain with a VST model run as VST runs it -> `judge_verdicts` (the schema of
`verdicts`, one row per chain x measurement; a table of its own since the rule checks own `verdicts`).

Each input record is one chain. Its clips' frames are the ones VST's loader would give the
exported record: the window's 2 fps frames picked by decord's frame timestamps (both edges
included, capped, padded to even) and sliced per thought span (curation.video.segment), decoded
at one frame size that keeps the window within VST's visual token budget. The model is loaded
once per process (kept across batches) and used by one thread at a time. The measurements and
the verdict rules live in curation.model.judge.

Defaults follow VST (the `description` of each field names its source); recipes may choose
otherwise (the demo keeps small token caps for CPU speed).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from curation.model.judge import JUDGE_VERSION, MODES, ChainInput, JudgeConfig, JudgeRules, judge_chains, verdicts
from curation.model.vst_protocol import PIXELS_PER_TOKEN, ClipInput, VisualBudget, VSTEngine, window_frame_size
from curation.video.segment import VST_MAX_FRAMES
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.streaming import Join, PartInputs, PartRows

TINY = "tiny"  # model: tiny -> <project>/data/models/tiny, built on first use (offline)


VST_RL = "VST-RL/run.sh"  # VST's GRPO recipe (repository 1ranGuan/VST)
VST_EVAL = "VST's eval (lmms-eval model qwen2_5_vl_stream_think, eval/scripts/*.sh)"


class JudgeParams(StageParams):
    path_fields: ClassVar[tuple[str, ...]] = ("model",)
    stage: Literal["judge"] = "judge"
    model: str = Field(TINY, description="folder of a Qwen2.5-VL / VST checkpoint (relative to the project), or 'tiny'")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")
    modes: list[Literal["teacher_forced", "own_thinking", "blind", "likelihood"]] = Field(default_factory=lambda: list(MODES))
    # -- decoding: VST's eval for answers, VST's RL rollouts for the pass rate
    answer_temperature: float = Field(0.0, ge=0, le=2.0, description=f"teacher-forced and blind answers; 0 = greedy, as {VST_EVAL}: temperature 0, num_beams 1")
    answer_top_p: float = Field(1.0, gt=0, le=1.0, description="teacher-forced and blind answers, when answer_temperature > 0")
    samples: int = Field(8, ge=1, le=64, description=f"own-thinking rollouts per chain (k of the pass rate); {VST_RL}: actor_rollout_ref.rollout.n=8")
    temperature: float = Field(1.0, gt=0, le=2.0, description=f"own-thinking rollouts; {VST_RL}: actor_rollout_ref.rollout.temperature=1")
    top_p: float = Field(0.98, gt=0, le=1.0, description=f"own-thinking rollouts; {VST_RL}: actor_rollout_ref.rollout.top_p=0.98")
    max_thought_tokens: int = Field(1000, ge=1, le=32768, description=f"new tokens per sampled thought; {VST_RL}: data.max_response_length=1000")
    max_answer_tokens: int = Field(
        1000, ge=1, le=32768, description=f"new tokens per answer (greedy or sampled); {VST_RL} caps a response at 1000; VST's eval stops at the end token"
    )
    prompt_style: Literal["inference", "rl_type1"] = "inference"
    seed: int = 0
    # -- frames: VST's loader and visual token budget
    max_frames: int = Field(VST_MAX_FRAMES, ge=2, description="2 fps frames per window at most (VST-SFT/run.sh FPS_MAX_FRAMES=384; eval max_num_frames=384)")
    min_pixels: int = Field(256 * PIXELS_PER_TOKEN, ge=PIXELS_PER_TOKEN, description=f"pixels per frame at least (256 x 28 x 28); {VST_EVAL}: min_pixels")
    max_pixels: int = Field(768 * PIXELS_PER_TOKEN, ge=PIXELS_PER_TOKEN, description="pixels per frame at most (768 x 28 x 28): qwen-vl-utils VIDEO_MAX_PIXELS, the cap of VST's eval")
    clip_visual_tokens: int = Field(8192, ge=1, description=f"visual tokens per clip (a window gets this x its clips, one frame size); {VST_EVAL}: max_stream_vid_tokens=8192 per thinking segment")
    max_window_visual_tokens: int | None = Field(
        None, ge=1, description="optional cap on a whole window's visual tokens (VST-SFT/run.sh trains with 24,576: VIDEO_MAX_PIXELS=19267584 = 24576 x 28 x 28 per window)"
    )
    frame_width: int = Field(0, ge=0, description="decode frames at most this wide, below VST's sizes (0: VST's budget only); a speed choice for CPU runs")
    reuse_kv_cache: bool = Field(True, description="keep the memory's KV cache across clips (False: re-encode every call)")
    # -- verdict rules
    drop_blind_multiple_choice: bool = True
    drop_blind_all_types: bool = False
    pass_rate_rule: Literal["rl_band", "min"] = "rl_band"
    min_pass_rate: float = Field(0.5, ge=0, le=1)
    likelihood_z_max: float = Field(3.5, gt=0)
    min_thought_logprob: float | None = None

    def budget(self) -> VisualBudget:
        return VisualBudget(self.min_pixels, self.max_pixels, self.clip_visual_tokens, self.max_window_visual_tokens)

    def config(self) -> JudgeConfig:
        return JudgeConfig(
            modes=tuple(self.modes),
            samples=self.samples,
            temperature=self.temperature,
            top_p=self.top_p,
            max_thought_tokens=self.max_thought_tokens,
            max_answer_tokens=self.max_answer_tokens,
            prompt_style=self.prompt_style,
            seed=self.seed,
            answer_temperature=self.answer_temperature,
            answer_top_p=self.answer_top_p,
            visual=self.budget(),
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
def build_judge_records(rows: PartRows, params: JudgeParams) -> list[dict]:
    """One record per ok chain of the part, with the clips table's VST frame indices of each
    thought's clip (None: the clip is not an ok row there). The judge picks the frames again from
    the video's own timestamps (`clip_frame_indices`); these say the clips exist."""
    chains = [c for c in rows.rows("chains") if c["status"] == "ok"]
    frames = {clip["clip_id"]: clip["vst_frame_indices"] or [] for clip in rows.rows("clips") if clip["status"] == "ok"}
    return [{"chain_id": c["chain_id"], "chain": c, "clip_frames": [frames.get(t.get("clip_id")) for t in c.get("thoughts") or []]} for c in chains]


# Parts hold whole videos: a chain's clips are among the part's own clips rows.
JUDGE_INPUTS = PartInputs(
    table="chains",
    key="chain_id",
    group="video_id",
    build=build_judge_records,
    joins=(Join("clips", on="video_id", columns=("clip_id", "vst_frame_indices", "status")),),
)


def load_judge_inputs(run_dir: RunDir, params: JudgeParams) -> list[dict]:
    """Every input record at once (tools and tests); the stage itself reads them part by part."""
    return list(JUDGE_INPUTS(run_dir, params))


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


def is_untrained(path: Path) -> bool:
    """A folder written by curation.model.tiny.init_tiny holds random weights (vstw_tiny.json
    marks it; a checkpoint a trainer saved has none)."""
    return (path / "vstw_tiny.json").is_file()


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


def chain_input(record: dict, project_root: Path, params: JudgeParams) -> ChainInput:
    from curation.formats.question import ground_truth, prompt_text

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
    # The window and spans exactly as the export writes them (video_start/end, text_stream).
    window = (float(chain["start_s"]), float(chain["end_s"]))
    spans = [(float(t["start_s"]), float(t["end_s"])) for t in thoughts]
    try:
        frames = decode_clips(path, window, spans, params)
    except Exception as err:  # a decoder error costs this chain only
        raise ChainInputError("judge_decode_error", f"chain {chain['chain_id']}: {path}: {str(err).splitlines()[0][:300]}") from None
    clips = [ClipInput(s, e, f) for (s, e), f in zip(spans, frames)]
    return ChainInput(chain["chain_id"], qa.get("type") or "", prompt_text(qa), gold, clips, [t["text"] for t in thoughts])


def clip_frame_indices(reader, window: tuple[float, float], spans: list[tuple[float, float]], max_frames: int) -> list[list[int]]:
    """Source frame indices of each span, as VST's loader picks them from this video's own
    decord timestamps (the video's FrameClock, as every stage reads it)."""
    from curation.video.clock import FrameClock
    from curation.video.segment import vst_clip_slice, vst_window_frames

    vs, ve = window
    frames = vst_window_frames(vs, ve, FrameClock.of_reader(reader).ends, max_frames)
    out = []
    for s, e in spans:
        lo, hi = vst_clip_slice(len(frames), vs, ve, s, e)
        out.append(frames[lo:hi])
    return out


def frame_size(height: int, width: int, per_clip: list[list[int]], params: JudgeParams) -> tuple[int, int]:
    """One (height, width) for the window: VST's budget, then at most frame_width wide."""
    clips = [c for c in per_clip if c]
    h, w = window_frame_size(height, width, sum(len(c) for c in clips), len(clips), params.budget())
    if params.frame_width and w > params.frame_width:
        new_w = max(28, params.frame_width - params.frame_width % 28)
        h, w = max(28, int(round(h * new_w / w / 28)) * 28), new_w
    return h, w


def decode_clips(path: Path, window: tuple[float, float], spans: list[tuple[float, float]], params: JudgeParams) -> list:
    """Each span's frames (T, h, w, 3), decoded straight at the window's frame size (a 192 s
    window at native 1080p would otherwise hold GBs of pixels); None for a span with no frame."""
    from curation.video.decode import open_reader

    reader = open_reader(path)
    per_clip = clip_frame_indices(reader, window, spans, params.max_frames)
    wanted = sorted({i for c in per_clip for i in c})
    if not wanted:
        return [None] * len(spans)
    height, width = reader[0].shape[:2]
    h, w = frame_size(height, width, per_clip, params)
    sized = reader if (h, w) == (height, width) else open_reader(path, width=w, height=h)
    decoded = sized.get_batch(wanted).asnumpy()
    where = {index: k for k, index in enumerate(wanted)}
    return [decoded[[where[i] for i in c]] if c else None for c in per_clip]


# ---- the stage function ------------------------------------------------------------------------
def judge_batch(records: list[dict], params: JudgeParams, ctx: StageContext) -> list[dict]:
    rows, ready = [], []
    for record in records:
        try:
            ready.append(chain_input(record, ctx.project_root, params))
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
    untrained = params.model == TINY or is_untrained(path)
    for result in results:
        rows.extend(verdicts(result, types[result.chain_id], params.rules(), path.name, untrained))
    return rows


def judge_failed_row(record: dict, reason: str, message: str) -> dict:
    return failed(reason, message, chain_id=record.get("chain_id"), check="judge", checker_version=JUDGE_VERSION)


STAGE = Stage(
    name="judge",
    output_table="judge_verdicts",
    fn=judge_batch,
    params_model=JudgeParams,
    key="chain_id",
    input_table="chains",
    reads_if_present=("clips",),
    kind="io",  # one model per process, used under a lock; threads overlap frame decoding only
    failed_row=judge_failed_row,
    load_inputs=JUDGE_INPUTS,
)
