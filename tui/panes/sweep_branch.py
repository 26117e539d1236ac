"""Branch from the timeline (issue 25, item 3): re-run a cell from the step shown with the prompt field's
new text, so a learner sees how much of the image is already settled at that step.

``b`` on a focused cell while the timeline shows step k (0-based) of a finished sweep samples the sweep
again with the prompt ``[OLD:NEW:K]`` (``core.prompt_editing``), K = k + 1: the shown frame is the state
after step k, so steps 0..k read OLD (the sweep's prompt) and the rest read NEW (the prompt field's text).
Same seed, scales, steps, scheduler and size, and the same batch (the timeline only exists for a sweep of
one batch: scales, seeds or negatives, no Y axis): the sampler is deterministic, so the branch's first K
steps are the sweep's own, to the bit. The branch's image lands in the focused cell only, captioned
``branch @ step K: 'NEW'``; the other cells keep the sweep's images to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from textual.binding import Binding

from ...core.errors import UserError
from ...core.prompt_editing import parse_edits
from ..job_kinds import JobKind
from ..job_results import BranchSampled
from ..progress import StepPreview

if TYPE_CHECKING:
    from ..app_context import AppContext


def branch_prompt(old: str, new: str, kept: int) -> str:
    """``[old:new:kept]``: ``kept`` steps of ``old``, then ``new``; a ``UserError`` line where it cannot be."""
    old, new = old.strip(), new.strip()
    if new == old:
        raise UserError("The prompt field still holds the sweep's prompt: type the new text there (f2), then b.")
    for text, what in ((old, "the sweep's prompt"), (new, "the new prompt")):
        if parse_edits(text, what).edits:
            raise UserError(f"{what} already has a prompt edit [from:to:when]: branch from a plain prompt.")
    prompt = f"[{old}:{new}:{kept}]"
    try:
        edits = parse_edits(prompt).edits
    except UserError:
        edits = ()
    if len(edits) != 1 or (edits[0].before, edits[0].after) != (old, new):  # a ':' or bracket in a prompt
        raise UserError("A ':' or bracket in the prompts breaks the edit [old:new:step]: branch from plain text.")
    return prompt


@dataclass(frozen=True)
class Branch:
    """What ``b`` asks the worker for: re-run the sweep with ``prompt``, keep cell ``index``'s image."""

    index: int
    step: int  #: the shown step k (0-based); K = step + 1 steps keep the old prompt
    old: str
    new: str
    prompt: str

    @property
    def caption(self) -> str:
        return f"branch @ step {self.step + 1}: {self.new!r}"


@dataclass
class BranchShown:
    """The last branch drawn: which cell, what ran, and its x_t after the kept steps (RGB preview)."""

    branch: Branch
    image: Any = field(repr=False)
    kept_xt: Any = field(repr=False)  #: uint8 [h, w, 3]: the branch's latents after step k, as the timeline maps them


class BranchMixin:
    """``b``: branch the focused cell from the scrubbed step (mixed into ``SweepPane``, which gives it ``ctx``,
    ``result``, ``step``, ``insight``, ``cells``, ``_axes``, ``status``, ``submit`` and ``grid_job``)."""

    ctx: AppContext
    result: Any
    cells: list

    BRANCH_BINDINGS = [
        Binding("b", "branch", "On a scrubbed cell: re-run it from this step with the prompt field's text",
                show=False, tooltip="Keep the first steps up to the one shown, then sample the rest with the "
                                    "new prompt (prompt edit [old:new:k])"),
    ]

    branched: BranchShown | None = None  #: the last branch shown, if any
    running: Branch | None = None  #: the branch being sampled, if one is

    def plan_branch(self) -> Branch:
        """The branch of the focused cell (cell 0 if none) from the shown step, or a ``UserError`` line."""
        result, insight = self.result, getattr(self, "insight", None)
        if result is None or insight is None or self._axes is None:
            raise UserError("No timeline to branch from: ctrl+r runs a sweep (scales, seeds or negatives, no Y axis).")
        if self.step is None:
            raise UserError("Scrub to a step first: pageup (the branch keeps the steps up to the one shown).")
        if self.step >= len(insight.steps) - 1:
            raise UserError("That is the last step: nothing is left to re-run; pageup to an earlier one.")
        focused = self.app.focused
        index = next((c.index for c in self.cells if c is focused), 0)
        old = result.settings.prompt
        new = self.ctx.prompts[0]
        return Branch(index, self.step, old.strip(), new.strip(), branch_prompt(old, new, self.step + 1))

    def action_branch(self) -> None:
        if self.worker.busy(JobKind.SWEEP):
            self.notify("A sweep is already running: escape cancels it.", severity="warning")
            return
        try:
            branch = self.plan_branch()
        except UserError as exc:
            self.notify(str(exc), title="Branch", severity="warning")
            self.status(str(exc))
            return
        settings, (x, y) = replace(self.result.settings, prompt=branch.prompt), self._axes
        refiner_at = self.ctx.settings.refiner_at
        report = self.grid_job
        self.status(f"branch of cell {branch.index + 1} @ step {branch.step + 1}: {branch.new!r} · starting…")

        def run(job):
            from ...core.grid_run import run_grid
            from ...core.timeline import Timeline
            from ..worker import require_models

            models = require_models(job)
            timeline = Timeline(models.model)
            to_pane = report(job, on_step=timeline)
            result = run_grid(models.model, settings, x, y, callback=to_pane.callback, cancel=job.cancel,
                              refiner=models.refiner, handoff=refiner_at)
            kept = timeline.previews(models.model, "xt")[branch.step][branch.index]
            return BranchSampled(result, branch, kept)

        self.branched, self.running = None, branch
        self.job = self.submit(JobKind.SWEEP, run)

    def grid_progress(self, payload) -> bool:
        """While a branch runs (its batch is the whole sweep), only the branched cell shows its previews."""
        branch = self.running
        if branch is None:
            return super().grid_progress(payload)
        if isinstance(payload, StepPreview):
            cell = next((c for c in self.cells if c.index == branch.index), None)
            if cell is not None and branch.index < len(payload.preview):
                cell.image = payload.preview[branch.index]
            self.show_step(payload.index, payload.total, payload.timestep, f"branch of cell {branch.index + 1} · ")
        return True

    def branch_started(self) -> bool:
        """Whether the job that started is a branch (the sweep pane keeps its timeline then)."""
        return self.running is not None

    def branch_ended(self, ev) -> bool:
        """A branch finished (its image shown: True) or failed (the pane's usual line follows: False)."""
        branch, self.running = self.running, None
        if branch is not None and isinstance(ev.result, BranchSampled):
            self.show_branch(ev.result)
            return True
        return False

    def show_branch(self, done: BranchSampled) -> None:
        """The branch's image in its cell, the others as they were; the status says what ran."""
        branch = done.branch
        image = done.result.images[branch.index]
        self.branched = BranchShown(branch, image, done.kept)
        cell = next((c for c in self.cells if c.index == branch.index), None)
        if cell is not None:
            cell.image, cell.caption, cell.generated = image, branch.caption, image
        self.status(f"branch of cell {branch.index + 1}: steps 1-{branch.step + 1} {branch.old!r}, "
                    f"then {branch.new!r} · pageup/pagedown: the sweep's timeline")
        self.work_done()
