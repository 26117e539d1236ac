"""Pane 5 — the chapter's exercises as sweeps: one seed, one thing varied across a grid.

The axis is a choice: negative prompt (exercise: removing "white hat"), img2img strength (from an
image file, or the latents pane's image), colour-loss scale ("blue guidance" towards a target
colour), guidance scale, and SDXL's micro-conditioning (original size, crop top-left). The work is
``core.grid_run.run_grid`` (a one-axis grid) on the model worker (through the SDXL refiner when one is loaded); each cell shows its live x0 preview, then the decoded
image captioned by its value. The prompt and the fixed negative prompt come from the prompt pane.
"""

from __future__ import annotations

import dataclasses

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Input, Label, ProgressBar, Select

from ..config import MAX_FIELD_CHARS
from ...core.errors import UserError
from ...core.grid_axes import Axis
from ...core.guidance import check_scale
from ...core.inputs import parse_int, parse_pairs, parse_scales
from ...core.jobs import JobEvent
from ...core.settings import SampleSettings
from ..job_kinds import JobKind
from .grid import GridCell, GridPane
from ..job_results import GridSampled

#: (label in the selector, ``core.grid_axes`` axis, example values)
AXES: list[tuple[str, str, str]] = [
    ("negative prompt", "negative", "|white hat|hat"),
    ("img2img strength", "strength", "0.3, 0.6, 0.9"),
    ("colour-loss scale", "color_scale", "0, 20, 60"),
    ("guidance scale", "scale", "1, 4, 8"),
    ("SDXL original size", "original_size", "256x256, 1024x1024"),
    ("SDXL crop", "crop", "0x0, 256x0"),
]
EXAMPLES = {axis: example for _, axis, example in AXES}
NUMERIC = ("strength", "color_scale", "scale")
DEFAULT_COLOR = "#3060ff"
#: on the shipped tiny model (greyscale clothing only): a negative that removes the prompt's garment, a grey target
TINY_EXAMPLES = {"negative": "|ankle boot|boot"}
TINY_COLOR = "#c0c0c0"


def parse_values(axis: str, text: str) -> list:
    """The values of ``axis`` typed in the values field; a ``UserError`` naming the fix otherwise."""
    if not text.strip():
        raise UserError(f"no values to sweep: e.g. {EXAMPLES[axis]}.")
    if axis == "negative":
        return [part.strip() for part in text.split("|")]
    if axis in NUMERIC:
        return parse_scales(text)
    what = "original size" if axis == "original_size" else "crop"
    return parse_pairs(text, what)


class ExerciseCell(GridCell):
    """One value's image (focus it to hand it to the latents pane, like a sweep cell)."""


class ExercisesPane(GridPane):
    """Exercise sweeps: negative prompt, img2img strength, colour loss, guidance, SDXL conditioning.

    | Key | Action |
    | :- | :- |
    | ctrl+r | Run the exercise sweep |
    | escape | Cancel it |
    | ctrl+s | Save the grid as a PNG (settings inside) |
    """

    pane_name = "exercises"
    job_kind = JobKind.EXERCISE
    cell_class = ExerciseCell
    BINDINGS = [
        Binding("ctrl+r", "run", "Run exercise", tooltip="Sample the chosen axis"),
        Binding("escape", "cancel", "Cancel", tooltip="Stop the running exercise"),
        Binding("ctrl+s", "save", "Save grid", tooltip="Save the grid as a numbered PNG with its settings"),
    ]
    DEFAULT_CSS = """
    ExercisesPane .form { height: auto; }
    ExercisesPane .form Input { width: 1fr; }
    ExercisesPane #axis { width: 26; }
    ExercisesPane #values, ExercisesPane #init { width: 2fr; }
    ExercisesPane #status { height: auto; max-height: 2; width: 100%; padding: 0 1; }  /* wraps at 80 columns */
    ExercisesPane ProgressBar { height: 1; padding: 0 1; }
    ExercisesPane #grid { grid-size: 4; grid-gutter: 0 1; height: 1fr; }
    """

    FIELD_LABELS = {"#axis": "exercise", "#values": "values across the grid", "#init": "init image",
                    "#color": "colour", "#guidance": "CFG", "#steps": "steps", "#seed": "seed"}

    def __init__(self, *, seed: int = 0, steps: int = 30, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_seed, self._init_steps = seed, steps
        self.axis = AXES[0][1]  #: the axis of the last run
        self._count = 0

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form"):
            yield Select([(label, axis) for label, axis, _ in AXES], value=AXES[0][1], allow_blank=False,
                         id="axis", tooltip="What varies across the grid")
            yield Input(EXAMPLES[AXES[0][1]], id="values",
                        tooltip="Values: '|' between negative prompts, commas between numbers or AxB pairs", max_length=MAX_FIELD_CHARS)
        with Horizontal(classes="form"):
            yield Input("", id="init", placeholder="none",
                        tooltip="Image-to-image from this file (strength sweeps; every axis when filled)", max_length=MAX_FIELD_CHARS)
            yield Input(DEFAULT_COLOR, id="color", tooltip="Colour-loss target: #rrggbb or r,g,b", max_length=MAX_FIELD_CHARS)
            yield Input("7.5", id="guidance", tooltip="Guidance scale (fixed unless it is the axis)", max_length=MAX_FIELD_CHARS)
            yield Input(str(self._init_steps), id="steps", type="integer", tooltip="Steps", max_length=MAX_FIELD_CHARS)
            yield Input(str(self._init_seed), id="seed", type="integer", tooltip="Seed", max_length=MAX_FIELD_CHARS)
        yield Label("ctrl+r runs the exercise sweep", id="status")
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="progress")
        yield Grid(id="grid")

    def on_mount(self) -> None:
        self.layout_cells(["waiting"] * 3)
        self.examples = dict(EXAMPLES)
        if self.ctx.settings.model == "tiny":
            self.examples.update(TINY_EXAMPLES)
            self.query_one("#values", Input).value = self.examples[str(self.query_one("#axis", Select).value)]
            self.query_one("#color", Input).value = TINY_COLOR

    def on_show(self) -> None:
        """Say which prompt the exercise runs (it comes from the prompt pane)."""
        if self.result is None and not self.worker.busy(self.job_kind):
            prompt, negative = self.ctx.prompts
            extra = f", negative {negative!r}" if negative else ""
            self.status(f"prompt {prompt!r}{extra} (f2 edits it) · ctrl+r runs")

    @on(Select.Changed, "#axis")
    def _axis_changed(self, event: Select.Changed) -> None:
        """A new axis brings its example values, unless the field holds values the user typed."""
        event.stop()
        values = self.query_one("#values", Input)
        examples = getattr(self, "examples", EXAMPLES)
        if values.value.strip() in {*EXAMPLES.values(), *examples.values(), ""}:
            values.value = examples[str(event.value)]

    def _init_image(self, axis: str):
        """The init image: the typed file, else (for strength) the latents pane's last input."""
        from ...core.vae import load_image

        path = self._value("#init").strip()
        if path:
            return load_image(path)
        if axis != "strength":
            return None
        image = self.ctx.encoded_image
        if image is None:
            raise UserError("a strength sweep needs a starting image: type its path, or encode one in the latents pane.")
        return image

    def settings(self):
        """The form as ``(SampleSettings, axis, values)``, validated (``UserError`` names the fix)."""
        from ...core.loss_guidance import parse_color

        axis = str(self.query_one("#axis", Select).value)
        values = parse_values(axis, self._value("#values"))
        color = self._value("#color").strip()
        if axis == "color_scale" and not color:
            raise UserError("a colour-loss sweep needs a target colour: type one like #3060ff.")
        prompt, negative = self.ctx.prompts
        settings = SampleSettings(
            prompt=prompt, negative_prompt=negative,
            steps=parse_int(self._value("#steps"), "steps", "30"),
            seed=parse_int(self._value("#seed"), "seed", "0"),
            guidance_scale=check_scale(self._value("#guidance").strip() or "7.5"),
            init_image=self._init_image(axis),
            color_target=parse_color(color) if color else None,
        ).validate()
        if axis in ("strength", "color_scale"):  # each cell is its own run: check every value now
            for value in values:
                dataclasses.replace(settings, **{axis: value}).validate()
        return settings, axis, values

    def action_run(self) -> None:
        if self.worker.busy(JobKind.EXERCISE):
            self.notify("An exercise sweep is already running: escape cancels it.", severity="warning")
            return
        try:
            settings, axis, values = self.settings()
        except UserError as exc:
            self.notify(str(exc), title="Exercise settings", severity="error")
            return
        self.axis, self._count = axis, len(values)
        self.layout_cells(["waiting"] * len(values))
        self.result = None
        self.query_one("#progress", ProgressBar).update(total=settings.steps, progress=0)
        ahead = self.waiting_for()
        self.status(f"seed {settings.seed}: " + (f"queued behind {ahead}…" if ahead else "starting…"))

        refiner_at = self.ctx.settings.refiner_at
        report = self.grid_job

        def run(job):
            from ...core.grid_run import run_grid
            from ..worker import require_models

            models, to_pane = require_models(job), report(job)
            return GridSampled(run_grid(models.model, settings, Axis(axis, values), callback=to_pane.callback,
                                        cancel=job.cancel, refiner=models.refiner, handoff=refiner_at,
                                        on_cells=to_pane.on_cells, on_batch=to_pane.on_batch))

        self.job = self.submit(JobKind.EXERCISE, run)

    def job_started(self, ev: JobEvent) -> None:
        self.status(f"sampling {self._count} cells along {self.axis}…")

    def job_progress(self, ev: JobEvent) -> None:
        self.grid_progress(ev.payload)

    def headline(self) -> str:
        return f"done: {self.axis} · "

    def grid_file(self, result) -> tuple[str, str]:
        params = result.grid_parameters(self.axis)
        return f"{self.axis}-{result.settings.prompt}", params
