"""Pane 2 — the guidance sweep: one seed, several guidance scales, sampled as one batch; or any
two-axis grid (A1111's X/Y plot, ``core.grid_axes``).

The X axis defaults to the guidance scale (``1, 2, 4, 12``); pick another X axis, and optionally a Y
axis, from the selects, with values in A1111's syntax (``1-5 (+2)``, ``1-10 [5]``, ``cat|dog``). Each
cell shows the live x0 preview after every step (latents mapped to RGB), then the decoded image,
captioned with its values ("1 · no CFG · 42"). Cells that share a batch fill in together; sequential
axes (steps, scheduler, ...) fill the grid in batch by batch. The work runs on the model worker
(``core.grid_run.run_grid`` with the job's cancel event); the pane only draws what comes back.
"""

from __future__ import annotations

import random
from contextlib import nullcontext

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Input, Label, ProgressBar, Select

from ..config import MAX_FIELD_CHARS
from ...core.errors import UserError
from ...core.grid_axes import KINDS, Axis, captions
from ...core.guidance import check_scale, scale_caption
from ...core.inputs import parse_int, parse_scales, parse_size
from ...core.jobs import JobEvent
from ..job_kinds import JobKind
from ...core.schedulers import SCHEDULERS
from ...core.settings import SampleSettings
from ..messages import TimestepShown
from ..progress import InsightCollected, StepPreview
from .grid import GridPane
from .sweep_branch import BranchMixin
from .sweep_cursor import CursorCell, CursorMixin
from .sweep_insight import InsightMixin, collect
from ..job_results import GridSampled

DEFAULT_SCALES = "1, 2, 4, 12"
AXIS_CHOICES = [("X: scale", "scale"), ("X: seed", "seed"), ("X: steps", "steps"), ("X: scheduler", "scheduler"),
                ("X: negative", "negative"), ("X: prompt S/R", "prompt_sr"), ("X: long prompt", "long_prompt"),
                ("X: SDXL orig size", "original_size"), ("X: SDXL crop", "crop")]


def seeds_text(settings: SampleSettings, x: Axis, y: Axis | None) -> str:
    """``seed 0``, or the seeds an axis sweeps (``seeds 1, 2, 4, 12``)."""
    axis = next((a for a in (x, y) if a is not None and a.name == "seed"), None)
    return f"seed {settings.seed}" if axis is None else "seeds " + ", ".join(axis.texts)


class SweepCell(CursorCell):
    """One scale's image; focus it to select it for the latents pane (c: the pixel cursor on it)."""


class SweepPane(BranchMixin, CursorMixin, InsightMixin, GridPane):
    """Guidance sweep grid.

    | Key | Action |
    | :- | :- |
    | ctrl+r | Run the sweep |
    | ctrl+n | New random seed, then run |
    | escape | Cancel the running sweep |
    | ctrl+s | Save the grid as a PNG (settings inside) |
    | ctrl+o | Attention maps on/off (recorded by the next sweep) |
    | ctrl+t | Overlay the next prompt token's heat map (enter in the token table picks one) |
    | pageup / pagedown | Scrub through the steps (left / right on a focused cell; x shows x_t) |
    | c | On a focused cell: a pixel cursor (arrows move it) and the words that drew that pixel |
    """

    pane_name = "sweep"
    job_kind = JobKind.SWEEP
    cell_class = SweepCell
    BINDINGS = [
        Binding("ctrl+r", "run", "Run sweep", tooltip="Sample every cell; cells that can share a batch run in one"),
        Binding("ctrl+n", "reroll", "New seed", tooltip="Re-roll the seed, then run"),
        Binding("escape", "cancel", "Cancel", tooltip="Stop the running sweep"),
        Binding("ctrl+s", "save", "Save grid", tooltip="Save the grid as a numbered PNG with its settings"),
        *InsightMixin.INSIGHT_BINDINGS,
        *CursorMixin.CURSOR_BINDINGS,
        *BranchMixin.BRANCH_BINDINGS,
    ]
    DEFAULT_CSS = """
    SweepPane #form { height: auto; }
    SweepPane #form Input { width: 1fr; }
    SweepPane #form #scales { width: 2fr; }
    SweepPane #form #cfg { width: 9; }
    SweepPane #form #steps { width: 11; }
    SweepPane #form #size { width: 11; }
    SweepPane #form Select { width: 2fr; }
    SweepPane #axes { height: auto; }
    SweepPane #axes Select { width: 1fr; }
    SweepPane #axes Input { width: 2fr; }
    SweepPane #status { height: auto; max-height: 2; width: 100%; padding: 0 1; }  /* wraps at 80 columns */
    SweepPane ProgressBar { height: 1; padding: 0 1; }
    SweepPane #grid { grid-size: 4; grid-gutter: 0 1; height: 1fr; }
    """

    FIELD_LABELS = {"#scales": "guidance scales", "#cfg": "CFG", "#seed": "seed", "#steps": "steps",
                    "#scheduler": "scheduler",
                    "#y-values": "Y values", "#x-axis": "X axis", "#y-axis": "Y axis",
                    "#size": "size"}

    def __init__(self, *, seed: int = 0, steps: int = 30, size: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_seed, self._init_steps, self._init_size = seed, steps, size
        self.current_t: float | None = None  #: the running sweep's timestep (the schedule view marks it)
        self._posted_t: float | None = None  #: the timestep last told to the app (TimestepShown)
        self._axes = None  #: (X, Y or None) of the running grid
        self._insight = None  #: the running sweep's SweepInsight, once its job sent it

    def compose(self) -> ComposeResult:
        with Horizontal(id="form"):
            yield Input(DEFAULT_SCALES, id="scales",
                        tooltip="X axis values (guidance scales by default): 1,2,4 or 1-5 (+2) or 1-10 [5] or a|b", max_length=MAX_FIELD_CHARS)
            yield Input("7.5", id="cfg", type="number", disabled=True, max_length=MAX_FIELD_CHARS,
                        tooltip="The guidance scale of every cell when no axis is the scale")
            yield Input(str(self._init_seed), id="seed", type="integer", tooltip="Seed", max_length=MAX_FIELD_CHARS)
            yield Input(str(self._init_steps), id="steps", type="integer", tooltip="Steps", max_length=MAX_FIELD_CHARS)
            yield Select([(name, name) for name in SCHEDULERS], prompt="model's default",
                         id="scheduler", allow_blank=True)
            yield Input(self._init_size, id="size", placeholder="auto", tooltip="Size: WIDTHxHEIGHT", max_length=MAX_FIELD_CHARS)
        with Horizontal(id="axes"):
            yield Select(AXIS_CHOICES, value="scale", id="x-axis", allow_blank=False)
            yield Select([(label.replace("X:", "Y:"), v) for label, v in AXIS_CHOICES], prompt="Y: none",
                         id="y-axis", allow_blank=True)
            yield Input("", id="y-values", placeholder="Y values, e.g. 1-3 or cat|dog",
                        tooltip="Y axis values: numbers, ranges 1-5 (+2) / 1-10 [5], or text a|b|c", max_length=MAX_FIELD_CHARS)
        yield Label("ctrl+r runs the sweep", id="status")
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="progress")
        yield Grid(id="grid")

    def on_mount(self) -> None:
        self.layout_cells([scale_caption(s) for s in parse_scales(DEFAULT_SCALES)])

    @on(Select.Changed, "#x-axis, #y-axis")
    def _axes_changed(self, event: Select.Changed) -> None:
        """The value fields say which axis they hold; the CFG field counts only while no axis is the scale."""
        event.stop()
        x, y = self.query_one("#x-axis", Select), self.query_one("#y-axis", Select)
        self.query_one("#scales", Input).border_title = (
            "guidance scales" if x.value == "scale" else f"X: {KINDS[str(x.value)].title.lower()} values")
        self.query_one("#y-values", Input).border_title = (
            "Y values" if y.is_blank() else f"Y: {KINDS[str(y.value)].title.lower()} values")
        self.query_one("#cfg", Input).disabled = "scale" in (x.value, None if y.is_blank() else y.value)

    def settings(self):
        """The form as ``SampleSettings`` + the X and Y axes, validated (``UserError`` names the fix)."""
        width, height = parse_size(self._value("#size"))
        select = self.query_one("#scheduler", Select)
        prompt, negative = self.ctx.prompts
        settings = SampleSettings(
            prompt=prompt, negative_prompt=negative,
            steps=parse_int(self._value("#steps"), "steps", "30"),
            seed=parse_int(self._value("#seed"), "seed", "0"),
            guidance_scale=self._cfg(),
            width=width, height=height,
            scheduler=None if select.is_blank() else str(select.value),
        )
        x_name = str(self.query_one("#x-axis", Select).value)
        x = Axis.parse(x_name, self._value("#scales"))
        y_select = self.query_one("#y-axis", Select)
        y = None if y_select.is_blank() else Axis.parse(str(y_select.value), self._value("#y-values"))
        return settings.validate(), x, y

    def _cfg(self) -> float:
        """The CFG field's scale (7.5 by default), checked (``core.guidance.check_scale``)."""
        text = self._value("#cfg").strip() or "7.5"
        try:
            return float(check_scale(float(text)))
        except ValueError:
            raise UserError(f"CFG {text!r} is not a number: e.g. 7.5.") from None

    def action_run(self) -> None:
        if self.worker.busy(JobKind.SWEEP):
            self.notify("A sweep is already running: escape cancels it.", severity="warning")
            return
        try:
            settings, x, y = self.settings()
        except UserError as exc:
            self.notify(str(exc), title="Sweep settings", severity="error")
            return
        self._axes = (x, y)
        self.layout_cells(captions(settings, x, y))
        self.query_one("#grid", Grid).styles.grid_size_columns = min(len(x.values), 8 if y else 4)
        self.result = None
        self.clear_insight()
        attention = self.attention
        self.query_one("#progress", ProgressBar).update(total=settings.steps, progress=0)
        ahead = self.waiting_for()
        self.status(f"{seeds_text(settings, x, y)}: " + (f"queued behind {ahead} (escape in its pane stops it)…"
                                                          if ahead else "starting…"))
        refiner_at = self.ctx.settings.refiner_at
        report = self.grid_job

        def run(job):
            from ...core.attention import recording
            from ...core.grid_run import run_grid
            from ...core.timeline import Timeline
            from ..worker import require_models

            models = require_models(job)
            model, timeline = models.model, Timeline(models.model)
            to_pane = report(job, on_step=timeline)  # every step also goes into the timeline

            # heat maps and the timeline follow one batch of one prompt: an X axis of scales, seeds or
            # negatives and no Y axis (other grids run without them)
            one_batch = y is None and x.name in ("scale", "seed", "negative")
            with recording(model, settings, len(x.values)) if attention and one_batch else nullcontext() as rec:
                result = run_grid(model, settings, x, y, callback=to_pane.callback, cancel=job.cancel,
                                  refiner=models.refiner, handoff=refiner_at, on_cells=to_pane.on_cells,
                                  on_batch=to_pane.on_batch)
            if one_batch:  # a milestone, so it reaches the pane before the result does
                job.progress(InsightCollected(collect(model, timeline, rec, result.edits)))
            return GridSampled(result)

        self.job = self.submit(JobKind.SWEEP, run)

    def action_reroll(self) -> None:
        self.query_one("#seed", Input).value = str(random.randrange(2**32))
        self.action_run()

    def job_started(self, ev: JobEvent) -> None:
        if self.branch_started():  # a branch keeps the sweep's timeline
            return
        self._insight = None
        if self._axes is None:  # a job submitted without the form (tests, the command palette)
            self.status("sampling…")
            return
        x, y = self._axes
        what = f"{len(x.values)} x {len(y.values)} grid ({x.name} x {y.name})" if y else f"{len(x.values)} {x.name} cells"
        self.status(f"sampling {what}…")

    def job_progress(self, ev: JobEvent) -> None:
        match ev.payload:
            case InsightCollected(insight=insight):
                self._insight = insight
            case StepPreview(timestep=timestep) as step:
                self.current_t = timestep
                self.post_timestep()
                self.grid_progress(step)
            case payload:
                self.grid_progress(payload)

    def post_timestep(self) -> None:
        """Tell the app which timestep this pane shows: the running step's, else the scrubbed step's."""
        shown = self.current_t
        if shown is None and self.insight is not None and self.step is not None:
            shown = float(self.insight.timesteps[self.step])
        if shown != self._posted_t:
            self._posted_t = shown
            self.post_message(TimestepShown(shown))

    def job_failed(self, ev: JobEvent) -> None:
        self.current_t = None
        self.running = None  # a failed branch: the sweep's images and timeline stay
        self.post_timestep()
        super().job_failed(ev)

    def job_finished(self, ev: JobEvent) -> None:
        self.current_t = None
        if self.branch_ended(ev):
            self.post_timestep()
            return
        super().job_finished(ev)
        self.insight = self._insight
        self.post_timestep()
        if self.insight is not None and self.insight.maps is not None and self.token is not None:
            self.redraw()

    def grid_file(self, result) -> tuple[str, str]:
        return f"sweep-{result.settings.prompt}", result.grid_parameters()
