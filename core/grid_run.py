"""Sampling a grid (``core.grid_axes``'s request): its cells grouped into batches, one batch after another.

Cells that differ only in what a batch row carries (scale, seed, negative, prompt S/R, SDXL size/crop)
share one batch of at most ``core.batch_rows.MAX_SWEEP_CELLS`` rows; the others (steps, scheduler,
strength, long-prompt mode, colour scale) run one group after another, and ``on_cells`` hears of each
group as it finishes so a grid fills in. Every cell equals the single ``generate`` with its settings.
"""

from __future__ import annotations

import threading
from typing import Callable

import torch

from .batch_rows import MAX_SWEEP_CELLS as BATCH, Row
from .grid_axes import KINDS, Axis, captions, named, plan
from .results import GenerationResult, GridLayout
from .settings import SampleSettings
from .chunks import chunk_prompt
from .prompt_editing import schedule
from .refiner import RefinedResult


def _group_key(model, cell: SampleSettings) -> tuple:
    """Cells with equal keys run in one batch: the sequential fields, and the sequence length the text
    conditioning pads to at every step (so a cell's padding, hence its image, is that of its single run;
    with prompt edits a length per run of steps)."""
    def chunks(text: str) -> int:
        return len(chunk_prompt(model.tokenizer, text, cell.long_prompt).chunks)

    prompt, negative = schedule(cell.prompt, cell.steps), schedule(cell.negative_prompt, cell.steps)
    starts = sorted({0, *prompt.switches, *negative.switches})
    lengths: list[tuple[int, int]] = []  # (first step, chunks), a new entry only where the length changes
    for k in starts:
        n = max(chunks(prompt.at(k)), chunks(negative.at(k)) if cell.guidance_scale > 1 else 0)
        if not lengths or lengths[-1][1] != n:
            lengths.append((k, n))
    key = lengths[0][1] if len(lengths) == 1 else tuple(lengths)  # one length for the run: every plain prompt
    return (cell.steps, cell.scheduler, cell.strength, cell.long_prompt, cell.color_scale, key)


def batches(model, cells: list[tuple[SampleSettings, Row]]) -> list[list[int]]:
    """The cells' indices grouped into batches, in the order they run: cells with equal ``_group_key``
    share a batch of at most ``core.batch_rows.MAX_SWEEP_CELLS`` rows."""
    groups: dict[tuple, list[int]] = {}
    for i, (cell, _) in enumerate(cells):
        groups.setdefault(_group_key(model, cell), []).append(i)
    return [idx[k:k + BATCH] for idx in groups.values() for k in range(0, len(idx), BATCH)]


def run_grid(model, settings: SampleSettings, x: Axis, y: Axis | None = None, callback=None,
             cancel: threading.Event | None = None, *, refiner=None, handoff: float | None = None,
             on_cells: Callable[[list[int], GenerationResult], None] | None = None,
             on_batch: Callable[[list[int]], None] | None = None) -> GenerationResult:
    """Sample the grid; ``on_batch(indices)`` before and ``on_cells(indices, batch_result)`` after each
    batch (the grid fills in). ``refiner``: every batch hands off to an SDXL refiner at ``handoff``."""
    from .sampler import sample

    cells = plan(model, settings, x, y)
    order = batches(model, cells)
    images, latents, names, total = [None] * len(cells), [None] * len(cells), [""] * len(cells), 0.0
    dropped, edits = "", [None] * len(cells)
    for batch in order:
        first = cells[batch[0]][0]
        if on_batch is not None:
            on_batch(batch)
        kwargs = {} if handoff is None else {"handoff": handoff}
        result = sample(model, first, [cells[i][1] for i in batch], refiner=refiner, callback=callback,
                        cancel=cancel, **kwargs)
        for j, i in enumerate(batch):
            images[i], latents[i], names[i] = result.images[j], result.latents[j:j + 1], result.scheduler_name
            edits[i] = result.edits[j]
        total += result.timings["total_s"]
        dropped = dropped or result.dropped_tokens
        if on_cells is not None:
            on_cells(batch, result)
    texts = captions(settings, x, y)
    x_labels = [named(x.name, v) for v in x.values] if y else texts  # a saved grid's headers name their axis
    layout = GridLayout(KINDS[x.name].title, x_labels, KINDS[y.name].title if y else "",
                        [named(y.name, v) for v in y.values] if y else [], x.texts, y.texts if y else [])
    extra, kind = {}, GenerationResult
    if refiner is not None:  # the hand-off's names and split, as a single refined run reports them
        kind = RefinedResult
        extra = {k: getattr(result, k) for k in ("refiner_name", "high_noise_frac", "base_steps", "refiner_steps")}
    return kind(
        images=images, scales=[c.guidance_scale for c, _ in cells], latents=torch.cat(latents), settings=settings,
        model_name=model.name, scheduler_name=names[0], timings={"total_s": total, "batches": len(order)},
        dropped_tokens=dropped,
        rows=[r for _, r in cells], labels=texts, variants=[c for c, _ in cells], grid=layout,
        scheduler_names=names, edits=edits, **extra,
    )
