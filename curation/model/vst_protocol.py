"""Running a VST model the way VST runs it (spec section 4), clip by clip, with a reusable KV cache.

Every call VST makes has the same shape:

    [system "You are a helpful assistant.", previous text = memory, user(...clip...), (user(question))]

Only the memory grows between calls (one `Time=a-bs thought` line per clip), and it sits at the
front. So the key/value cache of "system + previous text + memory" is kept across clips
(`PrefixCache`); each call only encodes the new memory line, then the call's own user turn(s) on a
branch of the cache that is cropped away afterwards. The cost of a chain is then linear in its
clips instead of quadratic. `use_cache=False` re-encodes the whole prompt at every call: the
reference the cached path is tested against, and the baseline of benchmarks/judge.py.

Prompts are rendered with the processor's own chat template (a real VST checkpoint brings its own)
and tokenized by the processor; the cache is synced by longest common token prefix, so what the
model sees is exactly the tokens of the full prompt, whichever path runs.

Frames reach the processor within VST's visual token budget (`VisualBudget`, `fit_clips`): one
frame size for the whole window, as VST's eval resizes a whole video at once. Sampling draws on
the device that holds the logits (`SeededGenerators`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from curation.formats.rewards import extract_boxed

MEMORY_START = "[System]\nYou are a Streaming Video Analyst.\n"
# Qwen2.5-VL: 14 px patches merged 2 x 2, two frames per temporal patch: one visual token is a
# 28 x 28 pixel square of a PAIR of frames.
PIXELS_PER_TOKEN = 28 * 28
FRAME_FACTOR = 2
DEFAULT_SYSTEM = "You are a helpful assistant."
VST_FPS = 2.0
RL_TYPE1_QUESTION = (
    "Based on the provided Video Memory and the Current Video Clip, answer the following Problem.\n"
    "{prompt}\nOutput the final answer in \\boxed{{}}.\nYour answer:"
)


# ---- texts ------------------------------------------------------------------------------------
def clip_time(start_s: float, end_s: float) -> str:
    return f"Time={start_s:.1f}-{end_s:.1f}s "


def memory_line(start_s: float, end_s: float, thought: str) -> str:
    return f"{clip_time(start_s, end_s)}{thought}\n"


def final_question(time_s: float, prompt: str, style: str = "inference") -> str:
    """The last user message: `Time=Ts question` (inference) or VST's RL type1 wording."""
    body = RL_TYPE1_QUESTION.format(prompt=prompt) if style == "rl_type1" else prompt
    return f"Time={time_s:.1f}s {body}"


# ---- answers (the RL reward parsers' rules, spec section 3) ------------------------------------
# One reading of `\\boxed{}` for the whole project: the reward rules' (spec section 3).
boxed = extract_boxed


def extract_answer(kind: str, text: str) -> str | None:
    """The answer a reward would read from a model's output, normalised for comparison."""
    inner = boxed(text)
    scope = inner if inner is not None else text
    if kind == "multiple_choice":
        match = re.search(r"(?<![A-Za-z])([A-E])(?![A-Za-z])", scope)
        return match.group(1) if match else None
    if kind == "yes_no":
        match = re.search(r"\b(yes|no)\b", scope, flags=re.IGNORECASE)
        return match.group(1).lower() if match else None
    value = scope.strip()
    return _number(value) if value else None


def _number(value: str) -> str:
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        return value
    return str(int(number)) if number == int(number) else repr(number)


def answer_is_right(kind: str, output: str, gold: str) -> bool:
    got = extract_answer(kind, output)
    want = extract_answer(kind, gold)
    return got is not None and got == want


# ---- inputs -----------------------------------------------------------------------------------
@dataclass
class ClipInput:
    start_s: float
    end_s: float
    frames: np.ndarray | None  # (T, H, W, 3) RGB at 2 fps; None or empty: a turn with no video

    @property
    def has_video(self) -> bool:
        return self.frames is not None and len(self.frames) > 0


@dataclass(frozen=True)
class VisualBudget:
    """VST's visual token budget (defaults: its eval, lmms-eval model `qwen2_5_vl_stream_think`,
    run with `max_stream_vid_tokens=8192` by eval/scripts/*.sh).

    The eval resizes a whole video to one frame size so that each thinking segment holds about
    `clip_visual_tokens` tokens (total = tokens x segments); here a window's clips are the
    segments. Per frame the size stays within [min_pixels, max_pixels]."""

    min_pixels: int = 256 * PIXELS_PER_TOKEN  # the eval's min_pixels default
    max_pixels: int = 768 * PIXELS_PER_TOKEN  # qwen-vl-utils VIDEO_MAX_PIXELS, the eval's per-frame cap
    clip_visual_tokens: int = 8192  # max_stream_vid_tokens: tokens per thinking segment (clip)
    max_window_visual_tokens: int | None = None  # optional cap on a whole window (VST's SFT loader: 24,576)

    def window_tokens(self, clips: int) -> int:
        tokens = self.clip_visual_tokens * max(1, clips)
        return min(tokens, self.max_window_visual_tokens) if self.max_window_visual_tokens else tokens

    def frame_max_pixels(self, frames: int, clips: int) -> int:
        """Pixels one frame may have: the window's budget shared by its frames (two frames per
        token), at most max_pixels, and never below min_pixels (as the eval: `max(min(VIDEO_MAX_PIXELS,
        total / nframes * FRAME_FACTOR), min_pixels * 1.05)`; a window of clips averaging over
        64 s can then exceed its budget, where the eval would drop frames)."""
        share = self.window_tokens(clips) * PIXELS_PER_TOKEN * FRAME_FACTOR / max(1, frames)
        return int(max(min(self.max_pixels, share), self.min_pixels * 1.05))


def window_frame_size(height: int, width: int, frames: int, clips: int, budget: VisualBudget) -> tuple[int, int]:
    """(height, width) of every frame of a window: Qwen's smart_resize (multiples of 28, aspect
    kept) within the budget; small videos are scaled UP to min_pixels, as VST's eval does."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=28, min_pixels=budget.min_pixels, max_pixels=budget.frame_max_pixels(frames, clips))


def visual_tokens(frames: int, height: int, width: int) -> int:
    """Visual tokens of a clip of `frames` frames at height x width (frames padded to even)."""
    return (frames + frames % FRAME_FACTOR) // FRAME_FACTOR * (height // 28) * (width // 28)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, width, 3): bicubic with antialias, as VST's loader resizes."""
    import torch
    from torchvision.transforms import functional as F
    from torchvision.transforms import InterpolationMode

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    out = F.resize(video, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return out.permute(0, 2, 3, 1).numpy()


def fit_clips(clips: list["ClipInput"], budget: VisualBudget) -> list["ClipInput"]:
    """A window's clips with frames no larger than the budget allows (one size for the window).
    Frames already within it are left as they are (never scaled up here: callers that decode
    frames choose their size with `window_frame_size`, the judge stage does)."""
    sized = [c for c in clips if c.has_video]
    if not sized:
        return clips
    height, width = sized[0].frames.shape[1:3]
    frames = sum(len(c.frames) for c in sized)
    allowed = budget.frame_max_pixels(frames, len(sized))
    if all(c.frames.shape[1] * c.frames.shape[2] <= allowed for c in sized):
        return clips
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=28, min_pixels=min(budget.min_pixels, allowed), max_pixels=allowed)
    return [ClipInput(c.start_s, c.end_s, resize_frames(c.frames, h, w)) if c.has_video else c for c in clips]


@dataclass
class Sampling:
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_new_tokens: int = 32
    seed: int = 0


@dataclass
class Generated:
    text: str
    token_ids: list[int] = field(default_factory=list)


def user_clip_content(clip: ClipInput) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": clip_time(clip.start_s, clip.end_s)}]
    if clip.has_video:
        content.append({"type": "video"})
    return content


# ---- the engine -------------------------------------------------------------------------------
class VSTEngine:
    """One model + processor; renders VST calls, runs them with or without prefix-cache reuse."""

    def __init__(self, model, processor, use_cache: bool = True):
        import torch

        self.torch = torch
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.use_cache = use_cache
        self.tokens_run = 0  # tokens through the model, all calls (benchmarks compare the two paths)
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos = eos if eos is not None else self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])

    # -- rendering --------------------------------------------------------------------------
    def render(self, memory: str, turns: list[list[dict]], answer: str | None = None) -> tuple[str, str]:
        """(prefix, rest) of the chat text: prefix ends right after the memory (what the cache
        keeps), rest holds the user turns and the generation prompt (and `answer`, if given)."""
        messages = [
            {"role": "system", "content": DEFAULT_SYSTEM},
            {"role": "previous text", "content": memory},
            *({"role": "user", "content": turn} for turn in turns),
        ]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head = self.processor.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=False)
        cut = head.rindex(memory) + len(memory)
        if not text.startswith(head[:cut]):
            raise ValueError("the chat template does not render the memory as a prefix of the call")
        rest = text[cut:] + (answer if answer is not None else "")
        return text[:cut], rest

    def encode(self, text: str, clips: list[ClipInput]) -> dict:
        """Processor outputs (tensors on the model's device) for a text and its clips' frames."""
        from transformers.video_utils import VideoMetadata

        videos = [c.frames for c in clips if c.has_video]
        kwargs = {}
        if videos:
            kwargs["videos"] = videos
            kwargs["video_metadata"] = [VideoMetadata(total_num_frames=len(v), fps=VST_FPS, frames_indices=list(range(len(v)))) for v in videos]
        out = self.processor(text=[text], return_tensors="pt", **kwargs)
        return {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in out.items()}

    # -- low-level forward ------------------------------------------------------------------
    def _positions(self, ids, enc: dict):
        """3D rope positions (3, 1, L) of a full sequence, computed by the model's own rule."""
        if "video_grid_thw" not in enc:
            return self.torch.arange(ids.shape[1], device=self.device).view(1, 1, -1).expand(3, 1, -1)
        tt = enc["mm_token_type_ids"]
        positions, _ = self.model.model.get_rope_index(
            ids, tt, video_grid_thw=enc["video_grid_thw"], second_per_grid_ts=enc.get("second_per_grid_ts")
        )
        return positions

    def _forward(self, ids, positions, cache, enc: dict | None = None):
        self.tokens_run += int(ids.shape[1])
        kwargs = {}
        if enc is not None and "pixel_values_videos" in enc:
            kwargs = {"pixel_values_videos": enc["pixel_values_videos"], "video_grid_thw": enc["video_grid_thw"]}
        return self.model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True, **kwargs)

    # -- one call ---------------------------------------------------------------------------
    def _prepare(self, cache: "PrefixCache | None", memory: str, turns: list[list[dict]], clips: list[ClipInput], answer: str | None = None):
        """Render and encode a call; returns (cache, the ids to run: the uncached part of the prefix
        then the call's own turns, their positions, the turns' processor outputs, next position)."""
        torch = self.torch
        prefix, rest = self.render(memory, turns, answer)
        enc_rest = self.encode(rest, clips)
        prefix_ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        full_ids = torch.cat([torch.tensor([prefix_ids], device=self.device), enc_rest["input_ids"]], dim=1)
        enc_full = dict(enc_rest)
        if "mm_token_type_ids" in enc_rest:
            enc_full["mm_token_type_ids"] = torch.cat(
                [torch.zeros((1, len(prefix_ids)), dtype=enc_rest["mm_token_type_ids"].dtype, device=self.device), enc_rest["mm_token_type_ids"]],
                dim=1,
            )
        positions = self._positions(full_ids, enc_full)
        if cache is None or not self.use_cache:
            cache = PrefixCache(self)  # no reuse: this call encodes the whole prompt
        start = cache.begin(prefix_ids)  # the tokens after the cached common prefix go in this call
        return cache, full_ids[:, start:], positions[:, :, start:], enc_rest, int(positions.max()) + 1

    def generate(
        self, memory: str, turns: list[list[dict]], clips: list[ClipInput], sampling: Sampling, cache: "PrefixCache | None" = None, generator=None
    ) -> Generated:
        """One VST call: greedy or sampled continuation of [system, memory, *turns]."""
        torch = self.torch
        cache, ids, positions, enc, next_pos = self._prepare(cache, memory, turns, clips)
        out_ids: list[int] = []
        try:
            with torch.no_grad():
                out = self._forward(ids, positions, cache.cache, enc)
                for _ in range(sampling.max_new_tokens):
                    token = pick_token(out.logits[0, -1], sampling, generator)
                    if token in self.eos_ids:
                        break
                    out_ids.append(token)
                    pos = torch.full((3, 1, 1), next_pos, device=self.device, dtype=torch.long)
                    next_pos += 1
                    out = self._forward(torch.tensor([[token]], device=self.device), pos, cache.cache)
        finally:
            cache.end()
        return Generated(self.tokenizer.decode(out_ids, skip_special_tokens=True), out_ids)

    def answer_logprobs(
        self, memory: str, turns: list[list[dict]], clips: list[ClipInput], answer: str, cache: "PrefixCache | None" = None
    ) -> list[float]:
        """Log-probabilities of the tokens of `answer` as the assistant's reply to the call."""
        torch = self.torch
        _, rest_without = self.render(memory, turns)
        n_answer = len(self.tokenizer(rest_without + answer, add_special_tokens=False)["input_ids"]) - len(
            self.tokenizer(rest_without, add_special_tokens=False)["input_ids"]
        )
        cache, ids, positions, enc, _ = self._prepare(cache, memory, turns, clips, answer=answer)
        try:
            with torch.no_grad():
                logits = self._forward(ids, positions, cache.cache, enc).logits[0].float()
        finally:
            cache.end()
        if n_answer <= 0:
            return []
        targets = ids[0, -n_answer:]
        logprobs = torch.log_softmax(logits[-n_answer - 1 : -1], dim=-1)
        return logprobs.gather(1, targets.view(-1, 1)).view(-1).tolist()


class PrefixCache:
    """The KV cache of one conversation's prefix (system + memory), reused across its calls."""

    def __init__(self, engine: VSTEngine):
        from transformers import DynamicCache

        self.engine = engine
        self.cache = DynamicCache(config=engine.model.config)
        self.ids: list[int] = []
        self.tokens_encoded = 0  # prefix tokens actually run through the model (for benchmarks)

    def begin(self, ids: list[int]) -> int:
        """Start a call whose prefix is `ids`: keep the longest common prefix with what the cache
        holds and return its length; the call runs the rest of `ids` then its own turns."""
        common = 0
        for a, b in zip(self.ids, ids):
            if a != b:
                break
            common += 1
        crop_to(self.cache, common)
        self.tokens_encoded += len(ids) - common
        self.ids = list(ids)
        return common

    def end(self) -> None:
        """After a call: drop its own turns and generated tokens, keep the (new) prefix."""
        if self.cache.get_seq_length() < len(self.ids):  # the call failed before encoding the prefix
            from transformers import DynamicCache

            self.cache, self.ids = DynamicCache(config=self.engine.model.config), []
        crop_to(self.cache, len(self.ids))


def crop_to(cache, length: int) -> None:
    """Keep the first `length` positions of a DynamicCache (its `crop` takes how many to drop)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class SeededGenerators:
    """Seeded torch.Generators, one per device, created on the device that holds the logits.

    torch.multinomial refuses a generator of another device (a CPU generator with CUDA logits
    fails), and with `device_map="auto"` the logits may come out on another GPU than the first
    layer: so the generator is picked from the logits' device at each draw."""

    def __init__(self, seed: int):
        self.seed = seed
        self._by_device: dict = {}

    def on(self, device):
        import torch

        device = torch.device(device)
        if device not in self._by_device:
            self._by_device[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._by_device[device]


def pick_token(logits, sampling: Sampling, generator=None) -> int:
    """Greedy when temperature is 0, else temperature + nucleus (top-p) sampling. `generator`:
    SeededGenerators (drawn on the logits' device) or a torch.Generator (the draw runs on the
    generator's device, the probabilities moved there if needed)."""
    import torch

    if sampling.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < sampling.top_p
    keep[0] = True
    weights = sorted_probs * keep
    weights = weights / weights.sum()
    if isinstance(generator, SeededGenerators):
        generator = generator.on(weights.device)
    if generator is not None and generator.device != weights.device:
        weights = weights.to(generator.device)
    choice = torch.multinomial(weights, 1, generator=generator)
    return int(order[int(choice)])


# ---- the streaming loop (spec section 4) -------------------------------------------------------
def stream_thoughts(engine: VSTEngine, clips: list[ClipInput], sampling: Sampling, generator=None) -> tuple[str, list[str], "PrefixCache"]:
    """The model writes its own thought for every clip but the last; returns (memory, thoughts, cache)."""
    memory, thoughts = MEMORY_START, []
    cache = PrefixCache(engine)
    for clip in clips[:-1]:
        out = engine.generate(memory, [user_clip_content(clip)], [clip], sampling, cache, generator)
        thoughts.append(out.text)
        memory += memory_line(clip.start_s, clip.end_s, out.text)
    return memory, thoughts, cache


def final_turns(last_clip: ClipInput, question: str) -> list[list[dict]]:
    return [user_clip_content(last_clip), [{"type": "text", "text": question}]]
