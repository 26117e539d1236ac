"""The noise schedule, drawn (f7): ᾱ_t, sqrt(1 - ᾱ_t) and the SNR over t, for the loaded model's
scheduler and the Fashion model's, with the running sweep's current timestep marked (or the step
the sweep pane's timeline is scrubbed to), and the
chapter's noising row (one Fashion-MNIST image noised at 8 timesteps) under the curves.
"""

from __future__ import annotations

import numpy as np
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label
from textual_plotext import PlotextPlot

from ..core.noise_schedule import NoiseSchedule, fashion_schedule, schedule_of
from .app_context import app_context
from .job_kinds import JobKind
from .job_results import NoisingRow
from .messages import JobFinished, JobUpdate, NoisingRowMade
from .widgets.image_view import ImageView
from ..core import fashion as fm
from .panes.train_views import noising_strip

EVERY = 10  #: plot every 10th training step (100 points per curve)


class ScheduleScreen(ModalScreen):
    """The noise schedule of the loaded model and of the Fashion model.

    | Key | Action |
    | :- | :- |
    | escape / f7 | Close |
    """

    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("f7", "dismiss", "Close", show=False)]
    DEFAULT_CSS = """
    ScheduleScreen { background: $background 90%; }
    ScheduleScreen > Vertical { background: $surface; height: 1fr; }
    ScheduleScreen #what { height: 1; padding: 0 1; }
    ScheduleScreen #plots { height: 1fr; min-height: 8; }
    ScheduleScreen PlotextPlot { width: 1fr; }
    ScheduleScreen #noising { height: 6; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.schedules: list[NoiseSchedule] = []
        self.marked: float | None = None  #: the timestep drawn as "now"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("", id="what")
            with Horizontal(id="plots"):
                yield PlotextPlot(id="levels")
                yield PlotextPlot(id="snr")
            yield ImageView(caption="the chapter's noising row: t = 0 … 999 (Fashion schedule)",
                            placeholder="no Fashion-MNIST data here (--data)", id="noising")
        yield Footer()

    def on_mount(self) -> None:
        model = app_context(self).model
        self.schedules = ([schedule_of(model.scheduler, f"{model.name} ({model.scheduler.config.get('beta_schedule', '?')})")]
                          if model is not None else []) + [fashion_schedule()]
        names = " vs ".join(s.name for s in self.schedules)
        self.query_one("#what", Label).update(f"noise schedule: {names}" + ("" if model else " · model not loaded yet"))
        self.marked = app_context(self).timestep
        self.draw()
        self.watch(self.app, "timestep", self._follow, init=False)
        self._noising_row()

    def _follow(self, now: float | None) -> None:
        """The sweep pane shows another timestep (``app.timestep``): move the mark."""
        if now != self.marked:
            self.marked = now
            self.draw()

    def draw(self) -> None:
        """Both plots, with the current timestep (while a sweep samples) as a vertical line."""
        levels, snr = self.query_one("#levels", PlotextPlot), self.query_one("#snr", PlotextPlot)
        now = "" if self.marked is None else f" · now t={self.marked:.0f}"
        for plot, title in ((levels, "ᾱ_t and sqrt(1-ᾱ_t)"), (snr, "log10 SNR = log10 ᾱ/(1-ᾱ)")):
            plot.plt.clear_data()
            plot.plt.clear_figure()
            plot.plt.title(title + now)
            plot.plt.xlabel("t")
        for s, tag in zip(self.schedules, ("", " FM") if len(self.schedules) == 2 else (" FM",)):
            t = s.timesteps[::EVERY]
            levels.plt.plot(t, s.alpha_bar[::EVERY], marker="braille", label=f"ᾱ{tag}")
            levels.plt.plot(t, s.noise[::EVERY], marker="braille", label=f"√(1-ᾱ){tag}")
            snr.plt.plot(t, np.log10(s.snr[::EVERY]), marker="braille", label=f"SNR{tag}")
        if self.marked is not None:
            for plot in (levels, snr):
                plot.plt.vline(self.marked, "red")
        levels.refresh()
        snr.refresh()

    def _noising_row(self) -> None:
        """The training pane's figure, computed on the worker (it is shown from there if already made)."""
        ctx = app_context(self)
        if ctx.noising_row is not None:
            self.query_one("#noising", ImageView).image = ctx.noising_row
            return
        source = ctx.settings.data

        def run(job):
            return noising_strip(fm, source)

        ctx.model_worker.submit(JobKind.FASHION_NOISE, run, target=self)

    @on(JobUpdate)
    def _noising_done(self, message: JobUpdate) -> None:
        message.stop()
        match message.event.result if isinstance(message, JobFinished) else None:
            case NoisingRow(image=image):  # without data (NoNoisingData) the row stays empty
                self.query_one("#noising", ImageView).image = image
                self.app.post_message(NoisingRowMade(image))
