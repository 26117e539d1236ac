"""Pane 2 — the guidance sweep: one seed, several guidance scales, sampled as one batch.

Each cell shows the live x0 preview after every step (latents mapped to RGB), then the decoded
image, captioned with its scale ("1 · no CFG"). The work runs on the model worker
(``core.sampler.sweep``, through the SDXL refiner when one is loaded, with the job's cancel event); the
pane only draws what comes back.
"""

from __future__ import annotations

import random

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Input, Label, ProgressBar, Select

from core.errors import UserError
from core.fields import parse_int, parse_scales, parse_size
from core.jobs import JobEvent
from core.schedulers import SCHEDULERS
from tui.panes.grid import GridCell, GridPane
from tui.panes.insight import InsightMixin

DEFAULT_SCALES = "1, 2, 4, 12"


class SweepCell(GridCell):
    """One scale's image; focus it to select it for the latents pane."""


class SweepPane(InsightMixin, GridPane):
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
    """

    pane_name = "sweep"
    job_kind = "sweep"
    cell_class = SweepCell
    BINDINGS = [
        Binding("ctrl+r", "run", "Run sweep"),
        Binding("ctrl+n", "reroll", "New seed"),
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save grid"),
        *InsightMixin.INSIGHT_BINDINGS,
    ]
    DEFAULT_CSS = """
    SweepPane #form { height: auto; }
    SweepPane #form Input { width: 1fr; }
    SweepPane #form #scales { width: 2fr; }
    SweepPane #form Select { width: 2fr; }
    SweepPane #status { height: 1; padding: 0 1; }
    SweepPane ProgressBar { height: 1; padding: 0 1; }
    SweepPane #grid { grid-size: 4; grid-gutter: 0 1; height: 1fr; }
    """

    FIELD_LABELS = {"#scales": "guidance scales", "#seed": "seed", "#steps": "steps", "#scheduler": "scheduler",
                    "#size": "size"}

    def __init__(self, *, seed: int = 0, steps: int = 30, size: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_seed, self._init_steps, self._init_size = seed, steps, size
        self._scales: list[float] = []
        self.current_t: float | None = None  #: the running sweep's timestep (the schedule view marks it)

    def compose(self) -> ComposeResult:
        with Horizontal(id="form"):
            yield Input(DEFAULT_SCALES, id="scales", tooltip="Guidance scales, comma-separated")
            yield Input(str(self._init_seed), id="seed", type="integer", tooltip="Seed")
            yield Input(str(self._init_steps), id="steps", type="integer", tooltip="Steps")
            yield Select([(name, name) for name in SCHEDULERS], prompt="model's default",
                         id="scheduler", allow_blank=True)
            yield Input(self._init_size, id="size", placeholder="auto", tooltip="Size: WIDTHxHEIGHT")
        yield Label("ctrl+r runs the sweep", id="status")
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="progress")
        yield Grid(id="grid")

    def on_mount(self) -> None:
        self._layout_cells(parse_scales(DEFAULT_SCALES))

    def _layout_cells(self, scales: list[float]) -> None:
        from core.cfg import scale_caption

        self.layout_cells([scale_caption(s) for s in scales])

    def settings(self):
        """The form as ``SampleSettings`` + scales, validated (``UserError`` names the fix)."""
        from core.settings import SampleSettings

        width, height = parse_size(self._value("#size"))
        select = self.query_one("#scheduler", Select)
        prompt, negative = self.app.prompts  # type: ignore[attr-defined]
        settings = SampleSettings(
            prompt=prompt, negative_prompt=negative,
            steps=parse_int(self._value("#steps"), "steps", "30"),
            seed=parse_int(self._value("#seed"), "seed", "0"),
            width=width, height=height,
            scheduler=None if select.is_blank() else str(select.value),
        )
        return settings.validate(), parse_scales(self._value("#scales"))

    def action_run(self) -> None:
        if self.worker.busy("sweep"):
            self.notify("A sweep is already running: escape cancels it.", severity="warning")
            return
        try:
            settings, scales = self.settings()
        except UserError as exc:
            self.notify(str(exc), title="Sweep settings", severity="error")
            return
        self._scales = scales
        self._layout_cells(scales)
        self.result = None
        self.clear_insight()
        attention, collected = self.attention, {}
        self.query_one("#progress", ProgressBar).update(total=settings.steps, progress=0)
        ahead = self.waiting_for()
        self.status(f"seed {settings.seed}: " + (f"queued behind {ahead} (escape in its pane stops it)…" if ahead
                                                 else "starting…"))
        refiner_at = self.app.settings.refiner_at

        def run(job):
            from contextlib import nullcontext

            from core.attention import recording
            from core.sampler import sweep
            from core.timeline import Timeline
            from tui.panes.insight import collect
            from tui.worker import require_models

            model, refiner = require_models(job)
            timeline = Timeline(model)

            def on_step(info) -> None:
                timeline(info)
                job.progress((info.index, info.total, info.timestep, info.preview))

            with recording(model, settings, len(scales)) if attention else nullcontext() as rec:
                result = sweep(model, settings, scales, callback=on_step, cancel=job.cancel, refiner=refiner,
                               handoff=refiner_at)
            collected["insight"] = collect(model, timeline, rec)
            return result

        self.job = self.submit("sweep", run)
        self._collected = collected

    def action_reroll(self) -> None:
        self.query_one("#seed", Input).value = str(random.randrange(2**32))
        self.action_run()

    def job_started(self, ev: JobEvent) -> None:
        self.status(f"sampling {len(self._scales)} scales in one batch…")

    def job_progress(self, ev: JobEvent) -> None:
        index, total, timestep, preview = ev.payload
        self.current_t = timestep
        self.show_preview(0, index, total, timestep, preview)

    def job_failed(self, ev: JobEvent) -> None:
        self.current_t = None
        super().job_failed(ev)

    def job_finished(self, ev: JobEvent) -> None:
        self.current_t = None
        self.show_result(ev, "done: ")
        self.insight = self._collected.get("insight")
        if self.insight is not None and self.insight.maps is not None and self.token is not None:
            self.redraw()

    def grid_file(self, result) -> tuple[str, str]:
        return f"sweep-{result.settings.prompt}", result.grid_parameters("scale")
