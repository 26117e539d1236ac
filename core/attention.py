"""Per-token cross-attention heat maps (DAAM, "What the DAAM", arXiv 2210.04885), recorded while sampling.

Every cross-attention layer of the UNet turns each latent pixel's query into a softmax over the 77
prompt tokens. DAAM sums those probabilities over heads, layers and steps, upsampled to the latent
grid, and reads the result per token as "where the model put this word". Here:

1. ``recording(model, rows, width, height)`` installs a ``CrossAttentionProbe`` on every cross-attention
   layer (``attn2``; self-attention keeps its processor) through diffusers' attention-processor API,
   and takes it out again on exit. The probe computes the layer's output from the probabilities it
   records (diffusers' classic ``AttnProcessor`` maths), so nothing runs twice.
2. The probe sums the probabilities over heads into a preallocated float32 buffer per resolution
   (``[rows, h_l*w_l, 77]``), with ``add_`` only: no allocation that outlives the call and no host
   sync, so the same code records inside a CUDA graph (``core.fast``): the replay adds into the
   same buffers. Warm-up calls before a capture are not counted.
3. ``HeatRecording.maps()`` upsamples each resolution's sum to the latent grid (bilinear; summing then
   upsampling equals upsampling each layer, since both are linear) and returns ``[rows, 77, h, w]``.

Only the text rows of the batch are recorded (guided rows also run an unconditional pass, whose
attention to the empty prompt is not the prompt's). SDXL concatenates its two encoders' states per
token position, so one map per position covers both encoders' tokens; ``token_positions`` looks a
word up in both tokenizers. Off by default: the probe costs time (``bench/bench_attention.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .graph_cache import GraphedCallable
from .tokens import breakdown

def level_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """The UNet's grids: each down block halves the size, rounding up (stride-2 conv, padding 1)."""
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = -(-h // 2), -(-w // 2)
        sizes.append((h, w))
    return sizes


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


class HeatAccumulator:
    """Float32 buffers, one per UNet resolution, that the probes add into (``[rows, h*w, tokens]``)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple, dict[int, torch.Tensor]] = {}  #: (rows, h, w, tokens, device) -> seq -> buffer
        self.current: dict[int, torch.Tensor] | None = None  #: the run's buffers, by sequence length
        self.rows = 0
        self.latent = (0, 0)
        self.levels = 1
        self.warming = False  #: True during a CUDA graph's warm-up and capture: only the capture records
        self.calls = 0  #: probe calls that recorded (eager calls, graph captures and replays)

    def begin(self, rows: int, h: int, w: int, tokens: int, levels: int, device: torch.device) -> None:
        """Zero (or first allocate) this shape's buffers: they keep their addresses for captured graphs.
        ``levels``: the UNet's resolutions (its number of blocks: the latent grid and its halvings)."""
        key = (rows, h, w, tokens, levels, str(device))
        if key not in self.buffers:
            self.buffers[key] = {lh * lw: torch.zeros(rows, lh * lw, tokens, device=device, dtype=torch.float32)
                                 for lh, lw in level_sizes(h, w, levels)}
        self.current = self.buffers[key]
        for buf in self.current.values():
            buf.zero_()
        self.rows, self.latent, self.levels = rows, (h, w), levels

    def add(self, probs: torch.Tensor, heads: int) -> None:
        """``probs [batch*heads, seq, tokens]``: sum the last ``rows`` rows' heads into the seq's buffer."""
        if self.current is None or (self.warming and not _capturing()):
            return
        batch = probs.shape[0] // heads
        seq, tokens = probs.shape[1], probs.shape[2]
        buf = self.current.get(seq)
        if buf is None or buf.shape[2] != tokens or batch < self.rows:
            return  # a layer at a grid this run does not map (never the case for SD/SDXL UNets)
        part = probs.view(batch, heads, seq, tokens)[batch - self.rows:]
        buf.add_(part.sum(1, dtype=torch.float32))
        self.calls += 1

    def maps(self) -> torch.Tensor:
        """``[rows, tokens, h, w]`` on the CPU: every resolution upsampled to the latent grid and summed."""
        h, w = self.latent
        total = None
        for (lh, lw) in level_sizes(h, w, self.levels):
            buf = self.current[lh * lw]
            grid = buf.view(self.rows, lh, lw, -1).permute(0, 3, 1, 2)
            if (lh, lw) != (h, w):
                grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
            total = grid if total is None else total + grid
        return total.float().cpu()


class CrossAttentionProbe:
    """A cross-attention processor that records its probabilities into a ``HeatAccumulator``.

    Self-attention calls (no encoder states) go to ``fallback``, the layer's previous processor.
    """

    def __init__(self, accumulator: HeatAccumulator, fallback) -> None:
        self.accumulator, self.fallback = accumulator, fallback

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        if encoder_hidden_states is None:
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        four_d = hidden_states.ndim == 4
        if four_d:
            b, c, hh, ww = hidden_states.shape
            hidden_states = hidden_states.view(b, c, hh * ww).transpose(1, 2)
        batch, tokens, _ = encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        query, key, value = (attn.head_to_batch_dim(x) for x in (query, key, value))
        probs = attn.get_attention_scores(query, key, attention_mask)  # [batch*heads, seq, tokens]
        self.accumulator.add(probs, attn.heads)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if four_d:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, hh, ww)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@dataclass
class HeatRecording:
    """What ``recording`` yields; ``maps()`` after the run gives ``[rows, 77, h, w]`` (CPU, float32)."""

    accumulator: HeatAccumulator
    layers: int  #: cross-attention layers probed
    result: torch.Tensor | None = field(default=None, repr=False)

    def maps(self) -> torch.Tensor:
        if self.result is None:
            if self.accumulator.calls == 0:
                raise UserError("no cross-attention was recorded: run a sweep with attention maps on.")
            self.result = self.accumulator.maps()
        return self.result


@dataclass
class AttentionState:
    """What a model keeps between recordings: one accumulator and a graph cache per row count (so the
    captured graphs keep their buffers). Lives in ``LoadedModel.attention_state``."""

    accumulator: HeatAccumulator = field(default_factory=HeatAccumulator)
    graphs: dict = field(default_factory=dict)  #: rows -> GraphedCallable whose captures include the probes


def _state(model) -> AttentionState:
    """The model's :class:`AttentionState`, made on first use."""
    if model.attention_state is None:
        model.attention_state = AttentionState()
    return model.attention_state


@contextlib.contextmanager
def _graphs_for(model, rows: int, accumulator: HeatAccumulator):
    """Under ``core.fast``'s CUDA graphs: swap in a graph cache of our own (per row count) whose
    captures include the probes, marking warm-up so only the capture records; put the plain one back."""
    fast = getattr(model, "unet_forward", None)
    graphed = getattr(fast, "graphed", None)
    if graphed is None:
        yield
        return
    caches = _state(model).graphs
    if rows not in caches:
        @contextlib.contextmanager
        def setup():
            accumulator.warming = True
            try:
                with fast.setup():
                    yield
            finally:
                accumulator.warming = False

        caches[rows] = GraphedCallable(fast.eager, f"{graphed.name} + attention maps", graphed.status, setup=setup)
    cache = caches[rows]
    cache.status = graphed.status
    replays = cache.replays
    try:
        with fast.eager_graphs(cache):  # the probes run in Python: never the compiled graphs while recording
            yield
    finally:
        # a replay adds into the buffers without running Python: count it as recorded calls too
        accumulator.calls += cache.replays - replays


@contextlib.contextmanager
def recording(model, settings, rows: int) -> Iterator[HeatRecording]:
    """Record per-token cross-attention of the next ``rows``-row run(s) of ``model`` with ``settings``
    (its size: the settings' or the model's own).

    Runs inside the block add up (one sweep, or a base's span of a refined sweep)."""
    if model.family == "sdxl-refiner":
        raise UserError("attention maps are recorded on the base model, not the SDXL refiner.")
    unet = model.unet
    accumulator = _state(model).accumulator
    tokens = int(min(model.tokenizer.model_max_length, 10_000))
    f = model.vae_scale_factor
    width, height = settings.width or model.default_size[0], settings.height or model.default_size[1]
    levels = len(unet.config.block_out_channels)
    accumulator.begin(rows, height // f, width // f, tokens, levels, model.device)
    saved = dict(unet.attn_processors)
    probes = {name: (CrossAttentionProbe(accumulator, proc) if name.endswith("attn2.processor") else proc)
              for name, proc in saved.items()}
    layers = sum(isinstance(p, CrossAttentionProbe) for p in probes.values())
    if layers == 0:
        raise UserError(f"{model.name} has no cross-attention layers to map.")
    accumulator.calls = 0
    unet.set_attn_processor(probes)
    try:
        with _graphs_for(model, rows, accumulator):
            yield HeatRecording(accumulator, layers)
    finally:
        unet.set_attn_processor(saved)


# ---------------------------------------------------------------- tokens and pictures
def _word_pieces(tokenizer, word: str) -> list[str]:
    return tokenizer.convert_ids_to_tokens(tokenizer(word, add_special_tokens=False, verbose=False).input_ids)


def _kept(tokenizer, prompt: str) -> list:
    """The prompt's tokens; with prompt edits (``core.prompt_editing``) every segment's, one after another
    (the maps sum over all steps, so a word of any segment has a position in them)."""
    result = breakdown(tokenizer, prompt)
    return [t for part in result.segments for t in part.tokens.kept] if result.segments else result.kept


def token_positions(model, prompt: str, word: str) -> list[int]:
    """Positions (in the 77-token window) of ``word``'s pieces in ``prompt``, every occurrence, looked
    up in each of the model's tokenizers (SDXL: both). ``UserError`` names the prompt's words otherwise."""
    word = word.strip()
    found: set[int] = set()
    tokenizers = [t for t in (model.tokenizer, getattr(model, "tokenizer_2", None)) if t is not None]
    for tok in tokenizers:
        kept = _kept(tok, prompt)
        pieces = [t.piece for t in kept]
        target = _word_pieces(tok, word) if word else []
        for i in range(len(pieces) - len(target) + 1 if target else 0):
            if pieces[i:i + len(target)] == target:
                found.update(t.position for t in kept[i:i + len(target)])
    if not found:
        words = ", ".join(dict.fromkeys(p.replace("</w>", "") for p in
                                         (t.piece for t in _kept(model.tokenizer, prompt)))) or "none"
        raise UserError(f"{word!r} is not a token of the prompt: pick one of {words}.")
    return sorted(found)


def heat_of(maps: torch.Tensor, positions: list[int]) -> np.ndarray:
    """``[rows, h, w]`` float32: the maps of ``positions`` summed (a word of several pieces)."""
    return maps[:, positions].sum(1).numpy()


def normalise(heat: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``[rows, h, w]`` sums -> ``(heat01, lo, hi)``: ``(heat - lo) / (hi - lo)`` with the smallest and
    largest value over all cells, so cells compare on one scale (the legend prints ``lo`` and ``hi``).
    Stretching from the minimum shows the shape even where a word's share is nearly even."""
    lo, hi = float(heat.min()), float(heat.max())
    span = hi - lo if hi > lo else 1.0
    return ((heat - lo) / span).astype(np.float32), lo, hi


def _inferno(v: np.ndarray) -> np.ndarray:
    """A small black-red-yellow-white ramp: ``v`` in [0, 1] -> uint8 RGB."""
    stops = np.array([[0, 0, 0], [120, 20, 110], [230, 60, 30], [250, 200, 40], [255, 255, 230]], np.float32)
    x = np.clip(v, 0, 1) * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    frac = (x - i)[..., None]
    return (stops[i] * (1 - frac) + stops[i + 1] * frac).round().astype(np.uint8)


def heat_image(heat01: np.ndarray, size: tuple[int, int]):
    """A ``[h, w]`` map in [0, 1] as a grayscale PIL image at ``size`` (bilinear)."""
    from PIL import Image

    img = Image.fromarray((np.clip(heat01, 0, 1) * 255).round().astype(np.uint8), mode="L")
    return img.resize(size, Image.Resampling.BILINEAR)


def overlay(image, heat01: np.ndarray, alpha: float = 0.55):
    """``image`` (PIL) with the heat map's colours blended over it (DAAM's overlay)."""
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    heat = np.asarray(heat_image(heat01, image.size), dtype=np.float32) / 255
    colour = _inferno(heat).astype(np.float32)
    a = alpha * heat[..., None] ** 0.5
    return Image.fromarray((rgb * (1 - a) + colour * a).round().astype(np.uint8))


def legend(lo: float, hi: float, width: int = 8) -> tuple[str, list[tuple[int, int, int]], str]:
    """A numeric legend: (low label, ``width`` ramp colours, high label), e.g. ``("7.91", [...], "8.73")``."""
    colours = [tuple(int(c) for c in _inferno(np.array(i / max(1, width - 1)))) for i in range(width)]
    return f"{lo:.3g}", colours, f"{hi:.3g}"


@dataclass
class TokenHeat:
    """One word's heat maps: per cell ``[rows, h, w]`` in [0, 1]: 0 is ``lo``, 1 is ``hi`` (summed attention)."""

    word: str
    positions: list[int]
    heat: np.ndarray = field(repr=False)
    lo: float = 0.0
    hi: float = 0.0

    def describe(self, layers: int, steps: int) -> str:
        return (f"Attention: {self.word!r} at token position(s) {','.join(map(str, self.positions))}, "
                f"cross-attention probability summed over heads, {layers} layers and {steps} steps; "
                f"black = {self.lo:.4g}, white = {self.hi:.4g}")


def heat_for(model, prompt: str, maps: torch.Tensor, word: str) -> TokenHeat:
    """``word``'s normalised heat maps from a recording's ``maps()``."""
    positions = token_positions(model, prompt, word)
    heat, lo, hi = normalise(heat_of(maps, positions))
    return TokenHeat(word, positions, heat, lo, hi)


def generate_with_maps(model, settings, words: list[str], callback=None, cancel=None):
    """One image at ``settings.guidance_scale`` and each word's heat map: ``(GenerationResult,
    [TokenHeat], layers, maps)`` (``maps``: the recording's ``[1, 77, h, w]``, e.g. for
    ``core.pixel_attention.rank_at``). The words are checked against the prompt before anything is sampled."""
    from .sampler import generate

    for word in words:
        token_positions(model, settings.prompt, word)
    with recording(model, settings, 1) as rec:
        result = generate(model, settings, 1, callback, cancel)
    maps = rec.maps()
    return result, [heat_for(model, settings.prompt, maps, w) for w in words], rec.layers, maps
