"""Per-step reports (core.step_reports): previews one step behind without a host sync, none for a progress bar.

On the CPU the held-back path runs with ``lag=True`` (its "copy" is the tensor itself); on CUDA it is the
default, with a pinned buffer and an event per step (the GPU test at the end).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from sd_explorer.core import sampler as sampler_module
from sd_explorer.core.preview import latents_to_rgb
from sd_explorer.core.refiner import relay
from sd_explorer.core.sampler import generate, sweep
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.step_reports import StepReports, wants_previews, without_previews
from sd_explorer.core.timeline import Timeline

PROMPT = "An oil painting of a collie in a top hat"


class _Model:  # what StepReports reads off a model
    device = torch.device("cpu")
    preview_factors = torch.eye(4, 3)
    preview_bias = None


def _x0(i: int) -> torch.Tensor:
    return torch.full((1, 4, 2, 2), -1.0 + 0.5 * i)


def test_held_back_reports_arrive_one_step_late_and_the_last_on_flush():
    seen = []
    reports = StepReports(seen.append, _Model(), 0.0, lag=True)
    for i in range(3):
        reports.report(i, 3, 999.0 - i, _x0(i), _x0(i), i)
        assert [s.index for s in seen] == list(range(i))  # step i is held until step i+1 is queued
    reports.flush()
    assert [s.index for s in seen] == [0, 1, 2]
    for i, info in enumerate(seen):  # each report carries its own step's preview, not the next one's
        np.testing.assert_array_equal(info.preview, latents_to_rgb(_x0(i), _Model.preview_factors))
    reports.flush()  # nothing left: no second delivery
    assert len(seen) == 3


def test_a_progress_bar_gets_every_step_at_once_and_no_preview():
    seen = []
    bar = without_previews(lambda info: seen.append(info))
    reports = StepReports(bar, _Model(), 0.0, lag=True)
    reports.report(0, 2, 999.0, _x0(0), _x0(0), 0)
    assert len(seen) == 1 and seen[0].preview is None  # not held back: there is no copy to wait for


def test_wrappers_keep_the_mark():
    bar = without_previews(lambda info: None)
    assert not wants_previews(bar) and wants_previews(lambda info: None) and not wants_previews(None)
    assert not wants_previews(relay(bar, 3, 10)) and wants_previews(relay(lambda info: None, 3, 10))
    timeline = Timeline.__new__(Timeline)  # chain() needs no model
    assert not wants_previews(timeline.chain(None)) and not wants_previews(timeline.chain(bar))
    assert wants_previews(timeline.chain(lambda info: None))


def test_cli_progress_callback_makes_no_preview(sd1, monkeypatch):
    from sd_explorer.core import commands

    calls = []
    monkeypatch.setattr(sampler_module, "StepReports", _spy(calls))
    bar, on_step = commands._progress(3, "test")
    seen = []

    def bar_and_more(info) -> None:  # an unmarked callback beside the bar: previews
        on_step(info)
        seen.append(info)

    generate(sd1, SampleSettings(PROMPT, steps=3, seed=1), callback=bar_and_more)
    bar.close()
    assert not wants_previews(on_step)
    assert calls == [True] and all(s.preview is not None for s in seen)
    calls.clear()
    generate(sd1, SampleSettings(PROMPT, steps=3, seed=1), callback=on_step)
    assert calls == [False]  # the bar alone: the loop makes none


def _spy(calls: list):
    class Spy(StepReports):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            calls.append(self.previews)
    return Spy


def _collect(model, settings, scales):
    seen = []
    result = sweep(model, settings, scales, callback=seen.append)
    return result, seen


def test_sampler_with_held_back_reports_equals_reports_at_once(sd1, monkeypatch):
    settings = SampleSettings(PROMPT, steps=4, seed=2, scheduler="DDIM")
    plain, at_once = _collect(sd1, settings, [1.0, 5.0])
    monkeypatch.setattr(sampler_module, "StepReports", functools.partial(StepReports, lag=True))
    held, late = _collect(sd1, settings, [1.0, 5.0])
    torch.testing.assert_close(held.latents, plain.latents, atol=0, rtol=0)
    assert [s.index for s in late] == [s.index for s in at_once] == [0, 1, 2, 3]  # all four, the last too
    for a, b in zip(at_once, late):
        np.testing.assert_array_equal(a.preview, b.preview)
        torch.testing.assert_close(a.x0, b.x0, atol=0, rtol=0)
        assert a.step == b.step and a.timestep == b.timestep


@pytest.mark.gpu
def test_cuda_previews_one_step_behind_equal_the_synchronous_ones(sd1_folder):
    from sd_explorer.core.models import load_model

    model = load_model(str(sd1_folder), device="cuda", dtype="fp16")  # graphs where the GPU has them
    settings = SampleSettings(PROMPT, steps=6, seed=4, scheduler="Euler")
    late = []
    sweep(model, settings, [1.0, 7.5], callback=late.append)
    assert [s.index for s in late] == list(range(6))
    for info in late:  # each preview is its own step's x0 (read back synchronously now that all is done)
        np.testing.assert_array_equal(info.preview, latents_to_rgb(info.x0, model.preview_factors, model.preview_bias))
    assert len({info.preview.tobytes() for info in late}) == 6  # six different images, not one buffer six times
