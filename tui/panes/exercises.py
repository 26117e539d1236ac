"""Pane 5 — the chapter's exercises as sweeps: one seed, one thing varied across a grid.

The axis is a choice: negative prompt (exercise: removing "white hat"), img2img strength (from an
image file, or the latents pane's image), colour-loss scale ("blue guidance" towards a target
colour), guidance scale, and SDXL's micro-conditioning (original size, crop top-left). The work is
``core.sweeps.run_axis`` on the model worker; each cell shows its live x0 preview, then the decoded
image captioned by its value. The prompt and the fixed negative prompt come from the prompt pane.
"""

from __future__ import annotations

import dataclasses

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Input, Label, ProgressBar, Select

from core.errors import UserError
from core.jobs import JobEvent
from tui.messages import ImageSelected
from tui.panes.base import JobPane
from tui.panes.sweep import SweepCell, parse_int, parse_scales

#: (label in the selector, ``run_axis`` axis, example values)
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


def parse_values(axis: str, text: str) -> list:
    """The values of ``axis`` typed in the values field; a ``UserError`` naming the fix otherwise."""
    from core.sweeps import parse_pairs

    if not text.strip():
        raise UserError(f"no values to sweep: e.g. {EXAMPLES[axis]}.")
    if axis == "negative":
        return [part.strip() for part in text.split("|")]
    if axis in NUMERIC:
        return parse_scales(text)
    what = "original size" if axis == "original_size" else "crop"
    return parse_pairs(text, what)


class ExerciseCell(SweepCell):
    """One value's image (focus it to hand it to the latents pane, like a sweep cell)."""


class ExercisesPane(JobPane):
    """Exercise sweeps: negative prompt, img2img strength, colour loss, guidance, SDXL conditioning.

    | Key | Action |
    | :- | :- |
    | ctrl+r | Run the exercise sweep |
    | escape | Cancel it |
    | ctrl+s | Save the grid as a PNG (settings inside) |
    """

    pane_name = "exercises"
    BINDINGS = [
        Binding("ctrl+r", "run", "Run exercise"),
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save grid"),
    ]
    DEFAULT_CSS = """
    ExercisesPane .form { height: auto; }
    ExercisesPane .form Input { width: 1fr; }
    ExercisesPane #axis { width: 26; }
    ExercisesPane #values, ExercisesPane #init { width: 2fr; }
    ExercisesPane #status { height: 1; padding: 0 1; }
    ExercisesPane ProgressBar { height: 1; padding: 0 1; }
    ExercisesPane #grid { grid-size: 4; grid-gutter: 0 1; height: 1fr; }
    """

    def __init__(self, *, seed: int = 0, steps: int = 30, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_seed, self._init_steps = seed, steps
        self.result = None  #: the last finished GenerationResult
        self.axis = AXES[0][1]  #: the axis of the last run
        self.last_saved = None  #: path of the last saved grid
        self.job = None
        self._count = 0

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form"):
            yield Select([(label, axis) for label, axis, _ in AXES], value=AXES[0][1], allow_blank=False,
                         id="axis", tooltip="What varies across the grid")
            yield Input(EXAMPLES[AXES[0][1]], id="values",
                        tooltip="Values: '|' between negative prompts, commas between numbers or AxB pairs")
        with Horizontal(classes="form"):
            yield Input("", id="init", placeholder="init image (latents pane's)",
                        tooltip="Image-to-image from this file (strength sweeps; every axis when filled)")
            yield Input(DEFAULT_COLOR, id="color", tooltip="Colour-loss target: #rrggbb or r,g,b")
            yield Input("7.5", id="guidance", tooltip="Guidance scale (fixed unless it is the axis)")
            yield Input(str(self._init_steps), id="steps", type="integer", tooltip="Steps")
            yield Input(str(self._init_seed), id="seed", type="integer", tooltip="Seed")
        yield Label("ctrl+r runs the exercise sweep", id="status")
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="progress")
        yield Grid(id="grid")

    def on_mount(self) -> None:
        self._layout_cells(["waiting"] * 3)

    @on(Select.Changed, "#axis")
    def _axis_changed(self, event: Select.Changed) -> None:
        """A new axis brings its example values, unless the field holds values the user typed."""
        event.stop()
        values = self.query_one("#values", Input)
        if values.value.strip() in {*EXAMPLES.values(), ""}:
            values.value = EXAMPLES[str(event.value)]

    def _layout_cells(self, captions: list[str]) -> None:
        """One cell per value: reuse existing cells (cleared), mount or remove the difference."""
        grid = self.query_one("#grid", Grid)
        grid.styles.grid_size_columns = min(4, len(captions))
        cells = self.cells
        for cell in cells[len(captions):]:
            cell.remove()
        for cell, caption in zip(cells, captions):
            cell.image, cell.caption = None, caption
        extra = [ExerciseCell(i, c) for i, c in enumerate(captions) if i >= len(cells)]
        if extra:
            grid.mount_all(extra)

    @property
    def cells(self) -> list[ExerciseCell]:
        """The live cells, in value order (cells being removed are skipped)."""
        cells = [c for c in self.query(ExerciseCell) if not c._closing and c.parent is not None]
        return sorted(cells, key=lambda c: c.index)

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    def _prompts(self) -> tuple[str, str]:
        """The prompt pane's prompt and negative prompt (the configured prompt without one)."""
        from tui.panes.tokens import TokensPane

        panes = self.app.query(TokensPane)
        if panes:
            return panes.first().prompt, panes.first().negative
        return self.app.settings.prompt, ""  # type: ignore[attr-defined]

    def _init_image(self, axis: str):
        """The init image: the typed file, else (for strength) the latents pane's last input."""
        from core.vae import load_image

        path = self._value("#init").strip()
        if path:
            return load_image(path)
        if axis != "strength":
            return None
        from tui.panes.latents import LatentsPane

        panes = self.app.query(LatentsPane)
        report = panes.first().report if panes else None
        if report is None:
            raise UserError("a strength sweep needs a starting image: type its path, or encode one in the latents pane.")
        return report.image

    def settings(self):
        """The form as ``(SampleSettings, axis, values)``, validated (``UserError`` names the fix)."""
        from core.guidance import parse_color
        from core.results import SampleSettings, check_scale

        axis = str(self.query_one("#axis", Select).value)
        values = parse_values(axis, self._value("#values"))
        color = self._value("#color").strip()
        if axis == "color_scale" and not color:
            raise UserError("a colour-loss sweep needs a target colour: type one like #3060ff.")
        prompt, negative = self._prompts()
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
        if self.worker.busy("exercise"):
            self.notify("An exercise sweep is already running: escape cancels it.", severity="warning")
            return
        try:
            settings, axis, values = self.settings()
        except UserError as exc:
            self.notify(str(exc), title="Exercise settings", severity="error")
            return
        self.axis, self._count = axis, len(values)
        self._layout_cells(["waiting"] * len(values))
        self.result = None
        self.query_one("#progress", ProgressBar).update(total=settings.steps, progress=0)
        waiting = "waiting for the worker (model load or training)…" if self.worker.busy() else "starting…"
        self.query_one("#status", Label).update(f"seed {settings.seed}: {waiting}")

        def run(job):
            from core.sweeps import SEQUENTIAL, run_axis
            from tui.worker import require_model

            model = require_model(job)
            cell = [-1]  # sequential axes: one run per cell, each starting again at step 0

            def on_step(info) -> None:
                if info.index == 0:
                    cell[0] += 1
                offset = cell[0] if axis in SEQUENTIAL else 0
                job.progress((offset, info.index, info.total, info.timestep, info.preview))

            return run_axis(model, settings, axis, values, callback=on_step, cancel=job.cancel)

        self.job = self.submit("exercise", run)

    def action_cancel(self) -> None:
        if self.worker.cancel("exercise"):
            self.query_one("#status", Label).update("cancelling…")

    def job_started(self, ev: JobEvent) -> None:
        self.query_one("#status", Label).update(f"sampling {self._count} cells along {self.axis}…")

    def job_progress(self, ev: JobEvent) -> None:
        offset, index, total, timestep, preview = ev.payload
        for cell, image in zip(self.cells[offset:], preview):
            cell.image = image
        self.query_one("#progress", ProgressBar).update(total=total, progress=index + 1)
        where = f"cell {offset + 1}/{self._count} · " if len(preview) == 1 and self._count > 1 else ""
        self.query_one("#status", Label).update(f"{where}step {index + 1}/{total} · t={timestep:.0f} · x0 preview")

    def job_finished(self, ev: JobEvent) -> None:
        result = ev.result
        self.result = result
        for cell, image, caption in zip(self.cells, result.images, result.captions):
            cell.image, cell.caption = image, caption
        s = result.settings
        line = f"done: {self.axis} · seed {s.seed}, {s.steps} steps, {result.scheduler_name}"
        if getattr(self.app, "show_timings", True):
            line += f", {result.timings.get('total_s', ev.seconds):.1f} s"
        self.query_one("#status", Label).update(line + " · ctrl+s saves the grid")
        if result.dropped_tokens:
            self.notify(f"Dropped beyond 77 tokens: {result.dropped_tokens!r}", severity="warning")
        self.post_message(ImageSelected(result.images[0], result.captions[0]))
        self.work_done()

    def job_failed(self, ev: JobEvent) -> None:
        self.query_one("#status", Label).update(
            "cancelled · ctrl+r runs again" if ev.error_kind == "cancelled" else "failed · ctrl+r runs again")
        super().job_failed(ev)

    def autorun(self) -> None:
        self.action_run()

    def action_save(self) -> None:
        if self.result is None:
            self.notify("Nothing to save yet: ctrl+r runs an exercise sweep first.", severity="warning")
            return
        self.save_grid(self.result, self.axis)

    @work(thread=True, exclusive=True, group="save")
    def save_grid(self, result, axis: str) -> None:
        """Write the grid PNG (the first cell's parameters, plus the axis and captions) off the UI thread."""
        from core.outputs import make_grid, save_png

        try:
            grid = make_grid(result.images, result.captions)
            params = result.parameters(0) + f"\nGrid ({axis}): " + " | ".join(result.captions)
            path = save_png(grid, self.app.settings.output_dir, f"{axis}-{result.settings.prompt}", params)
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Save failed", severity="error")
            return
        self.last_saved = path
        self.app.call_from_thread(self.notify, f"Saved {path}", title="Grid saved")
