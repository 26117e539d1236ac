"""Pane 4 — the Fashion-MNIST training monitor (the chapter's class-conditional DDPM).

Start / pause / resume / stop a run of ``core.fashion.Trainer`` on the model worker; a live loss
curve (raw and smoothed), step and epoch progress, images/s, ETA and device; after each epoch (and
on a key) a grid of samples per class, scored by the shipped classifier: class fidelity is plotted
beside the loss (``core.fashion.monitor``); the chapter's row of one image noised at 8 timesteps.
With no run yet it shows the shipped model (``load_shipped``); ctrl+r cancels that preview and
trains at once. The data field (a folder of IDX files or a .parquet file, completed as you type) is
remembered in the settings file. On a CPU the CPU recipe is the default (``core.fashion.recipes.CPU``: the
small UNet, garments within minutes; the chapter's UNet takes hours there); ctrl+t fills in the recipe of
the shipped model (a GPU recipe). Checkpoints load and save as safetensors; a run keeps its newest ``keep_checkpoints``.

The fields live in :class:`tui.panes.train_form.TrainingForm`, the run itself in ``train_job`` (on the
worker, reporting through the payloads of :mod:`tui.progress`), pictures and numbers in ``train_views``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, ProgressBar
from textual_plotext import PlotextPlot

from ...core.errors import UserError
from ...core.jobs import JobEvent
from ..job_kinds import JobKind
from ..job_results import ClassSamples, NoisingRow, NoNoisingData, TrainingDone, WeightsSaved
from ..messages import NoisingRowMade
from .job_pane import JobPane
from .train_form import TrainingForm
from .train_job import train_job
from .train_views import CURVES, class_legend, draw_curves, fmt_eta, fmt_fidelity, noising_strip, sample_grid
from ..progress import CheckpointSaved, DataLoaded, EpochSamples, PhaseText, TrainerReady, TrainingStep
from ..widgets.image_view import ImageView
from ...core import fashion as fm
from ...core.fashion import recipes

SAMPLE_STEPS = 50  #: DDIM steps for the per-class grid (the chapter's 1000-step DDPM is slower)
SAMPLES_PER_CLASS = 2  #: rows of the grid shown
PREVIEWS = (JobKind.FASHION_SHOW, JobKind.FASHION_NOISE)  #: jobs that training cancels to start at once
PAUSED = "paused · ctrl+b resumes"  #: the state line while paused (short: it must fit the pane at 80 columns)


def curve_legend() -> Text:
    """The chart's legend, one line: each curve's name in its colour."""
    legend = Text()
    for name, colour in CURVES:
        legend.append(" " if legend else "").append("━ ", style=colour).append(name)
    return legend


class TrainingPane(JobPane):
    """Fashion-MNIST training monitor.

    | Key | Action |
    | :- | :- |
    | ctrl+r | Start training (resume when paused); cancels a preview still sampling |
    | ctrl+b | Pause / resume |
    | escape | Stop (writes a resumable checkpoint) |
    | ctrl+g | Sample a grid per class now (from the model the caption names) |
    | ctrl+t | Fill in the shipped model's recipe (GPU: 400 epochs, batch 256, EMA 0.999) |
    | ctrl+o | Load the checkpoint at the path |
    | ctrl+s | Save the current model's weights |
    """

    pane_name = "training"
    says_when_queued = True
    BINDINGS = [
        Binding("ctrl+r", "start", "Train", tooltip="Train on Fashion-MNIST (resumes when paused)"),
        Binding("ctrl+b", "pause", "Pause/resume", tooltip="Pause between steps, or go on"),
        Binding("escape", "stop", "Stop", tooltip="Stop and write a resumable checkpoint"),
        Binding("ctrl+g", "sample", "Samples", tooltip="A grid of samples per class from the current model"),
        Binding("ctrl+t", "recipe", "Recipe", show=False, tooltip="Fill in the shipped model's recipe (a GPU recipe)"),
        Binding("ctrl+o", "load", "Load ckpt", show=False, tooltip="Load the .safetensors in the checkpoint field"),
        Binding("ctrl+s", "save", "Save", show=False, tooltip="Save the current model's weights"),
    ]
    DEFAULT_CSS = """
    TrainingPane #middle { height: 1fr; min-height: 8; }
    TrainingPane #chart { width: 1fr; margin-right: 1; }  /* the right axis's labels clear of the bars */
    TrainingPane #curves { height: 1; width: 100%; padding: 0 1; }
    TrainingPane PlotextPlot { width: 1fr; height: 1fr; min-height: 6; }
    TrainingPane #stats { width: 34; }
    TrainingPane #stats Label { width: 100%; }
    TrainingPane #stats ProgressBar { width: 100%; }
    TrainingPane #images { height: 1fr; min-height: 6; }
    TrainingPane #legend { height: 1; color: $text-muted; width: 100%; padding: 0 1; }
    TrainingPane #samples { width: 3fr; }
    TrainingPane #noising { width: 2fr; }
    """

    def __init__(self, data: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_source = data or ""
        self.pause_event = threading.Event()
        self.losses: list[float] = []
        self.steps: list[int] = []
        self.fidelity: list[tuple[int, float]] = []  #: (step, share) after each epoch of the current run
        self.stats = None  #: the last StepStats
        self.job = None
        self.model_source = ""
        self.last_saved = None
        self.trainer = None  #: the running/last run's Trainer, from its TrainerReady message
        self.stopped_checkpoint: str | None = None  #: the checkpoint a stopped run reported (a milestone)
        self.sample_steps = SAMPLE_STEPS
        self._shown_once = False

    @property
    def form(self) -> TrainingForm:
        return self.query_one(TrainingForm)

    def compose(self) -> ComposeResult:
        yield TrainingForm(self.data_source)
        with Horizontal(id="middle"):
            with Vertical(id="chart"):
                yield Label(curve_legend(), id="curves")
                yield PlotextPlot(id="loss")
            with Vertical(id="stats"):
                yield Label("no run yet · ctrl+r trains", id="state")
                yield Label("step", id="step-label")
                yield ProgressBar(total=100, show_eta=False, id="step-bar")
                yield Label("epoch", id="epoch-label")
                yield ProgressBar(total=100, show_eta=False, id="epoch-bar")
                yield Label("", id="rate")
        yield Label(f"columns: {class_legend()}", id="legend")
        with Horizontal(id="images"):
            yield ImageView(caption="samples per class", placeholder="ctrl+g samples", id="samples")
            yield ImageView(caption="noised at 8 timesteps", id="noising")

    def on_mount(self) -> None:
        self._draw_loss()

    def on_show(self) -> None:
        """First time the pane is shown with no run and no model: show the shipped model."""
        if self._shown_once:
            return
        self._shown_once = True
        if not self.ctx.settings.screenshot and not self.worker.busy(JobKind.TRAIN) and not self.model_source:
            self.show_noising()
            self.show_shipped()

    @on(Input.Submitted, "#data")
    def _data_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.show_noising()

    def show_noising(self) -> None:
        """The chapter's figure: the first training image at 8 timesteps (needs data, no model)."""
        source = self.form.data or None

        def run(job):
            return noising_strip(fm, source)

        self.query_one("#noising", ImageView).caption = "noised at 8 timesteps · loading data…"
        self.submit(JobKind.FASHION_NOISE, run)

    # -- showing a model ---------------------------------------------------------------------
    def _submit_show(self, loader, label: str) -> None:
        try:
            job = self._show_model_job(loader, label)
        except UserError as exc:
            self.notify(str(exc), title="Samples", severity="error")
            return
        if not self.worker.busy(JobKind.TRAIN):
            self._state(f"sampling: {label}…")
        self.submit(JobKind.FASHION_SHOW, job)

    def _show_model_job(self, loader, label: str):
        """A job: get a model (``loader(job)``), sample per class and score the samples."""
        steps = self.sample_steps
        grey = self.form.grey()
        if grey:
            label += f" · grey guidance {grey[0]:g} x{grey[1]:g}"

        def run(job):
            from ...core.fashion.monitor import score_model

            model = loader(job)
            job.resources["fashion"] = model
            target, scale = grey if grey else (None, 0.0)
            scored = score_model(model, SAMPLES_PER_CLASS, steps, cancel=job.cancel, color_target=target,
                                 color_scale=scale)
            return ClassSamples(label, sample_grid(scored), scored.report)

        return run

    def show_shipped(self) -> None:
        device = self.ctx.settings.device  # read here: the loader runs on the worker

        def loader(job):
            return fm.load_shipped(device=device)

        self.model_source = "shipped model"
        self._submit_show(loader, "shipped model")

    def action_load(self) -> None:
        path, device = self.form.checkpoint, self.ctx.settings.device
        if not path:
            self.notify("Type a checkpoint path first (a .safetensors from a run).", severity="warning")
            return

        def loader(job):
            return fm.load_weights(path, device=device)

        self.model_source = Path(path).name
        self._submit_show(loader, self.model_source)

    def action_sample(self) -> None:
        device = self.ctx.settings.device

        def loader(job):
            model = job.resources.get("fashion")
            if model is None:
                model = fm.load_shipped(device=device)
            return model

        self._submit_show(loader, self.model_source or "shipped model")

    def autorun(self) -> None:
        self.show_noising()
        self.show_shipped()

    def action_recipe(self) -> None:
        """The shipped model's recipe: the chapter's UNet, batch 256, AdamW 3e-4, EMA 0.999, 400 epochs."""
        self.form.fill_recipe()
        note = "the shipped model's recipe: chapter UNet, 400 epochs x batch 256 (~12,500 steps), EMA 0.999"
        if self.form.device_type != "cuda":
            self.notify(f"Filled in {note}. This is a GPU recipe (minutes on a GPU): on this CPU it takes "
                        "days. ctrl+r starts it anyway.", title="Shipped recipe", severity="warning", timeout=12)
        else:
            self.notify(f"Filled in {note}; ctrl+r starts it.", title="Shipped recipe")

    # -- training ----------------------------------------------------------------------------
    def train_config(self):
        """The run the form describes (not yet validated)."""
        return self.form.config(self.ctx.settings.output_dir)

    def _state(self, text: str) -> None:
        self.query_one("#state", Label).update(text)

    def action_start(self) -> None:
        if self.worker.busy(JobKind.TRAIN):
            if self.pause_event.is_set():
                self.action_pause()
            else:
                self.notify("Training is running: ctrl+b pauses, escape stops.")
            return
        try:
            config = self.train_config()
            config.validate()
        except UserError as exc:
            self.notify(str(exc), title="Training settings", severity="error")
            return
        for kind in PREVIEWS:  # training jumps ahead of this pane's previews
            self.worker.cancel(kind)
        self.pause_event.clear()
        self.trainer, self.stopped_checkpoint = None, None
        self.losses, self.steps, self.stats, self.fidelity = [], [], None, []
        self._draw_loss()
        pause, steps, keep = self.pause_event, self.sample_steps, self.ctx.settings.keep_checkpoints
        ahead = self.waiting_for(include_own=False)
        self._state(f"training queued behind {ahead}" if ahead else "training: starting…")
        run = train_job(config, self.ctx.settings.device, pause, steps, keep, SAMPLES_PER_CLASS)
        self.model_source = "training run"
        self.job = self.submit(JobKind.TRAIN, run)

    def action_pause(self) -> None:
        if not self.worker.busy(JobKind.TRAIN):
            self.notify("No training is running: ctrl+r starts one.", severity="warning")
            return
        if self.pause_event.is_set():
            self.pause_event.clear()
            self._state("training (resumed)")
        else:
            self.pause_event.set()
            self._state(PAUSED)

    def action_stop(self) -> None:
        if self.worker.cancel(JobKind.TRAIN):
            self.pause_event.clear()
            self._state("stopping…")

    def action_save(self) -> None:
        if self.worker.busy(JobKind.TRAIN):
            self.notify("Checkpoints are written every epoch and on stop (escape), into "
                        f"{self.ctx.settings.output_dir}/fashion.")
            return
        out_dir = self.ctx.settings.output_dir

        def run(job):
            from ...core.fashion.model import save_weights
            from ...core.outputs import write_new

            model = job.resources.get("fashion")
            if model is None:
                raise UserError("No model to save yet: ctrl+r trains one, ctrl+o loads one.")
            return WeightsSaved(write_new(out_dir, "fashion-weights", ".safetensors",
                                          lambda p: save_weights(model.unet, model.config, p)))

        self.submit(JobKind.FASHION_SAVE, run)

    # -- events from the worker --------------------------------------------------------------
    def job_started(self, ev: JobEvent) -> None:
        if ev.job.kind is JobKind.TRAIN:
            self._state("training: loading data…")

    def job_progress(self, ev: JobEvent) -> None:
        match ev.payload:
            case TrainingStep(stats=stats, history=history):
                self.show_step(stats, history)
            case PhaseText(text=text):
                self._state(text)
            case DataLoaded(source=source):
                self.form.remember_data(source)
            case NoisingRow(image=image):
                self._show_noising(image)
            case TrainerReady(trainer=trainer):
                self.trainer = trainer
            case EpochSamples(stats=stats, step=step, grid=grid, report=report):
                self.fidelity.append((step, report.overall))
                samples = self.query_one("#samples", ImageView)
                samples.image = grid
                samples.caption = f"after epoch {stats.epoch + 1} · {fmt_fidelity(report)}"
                self._draw_loss()
            case CheckpointSaved(path=path):
                self.stopped_checkpoint = path

    def _show_noising(self, image) -> None:
        noising = self.query_one("#noising", ImageView)
        noising.image, noising.caption = image, "noised at 8 timesteps"
        self.post_message(NoisingRowMade(image))

    def show_step(self, stats, history: list[tuple[int, float]]) -> None:
        slow = stats.device == "cpu" and stats.eta_s > 3600
        if self.stats is None and slow:  # say so once, at the run's first report
            cpu = recipes.CPU
            self.notify(f"About {fmt_eta(stats.eta_s)} on the CPU. The CPU recipe ({cpu.model} UNet, batch "
                        f"{cpu.batch_size}, {cpu.epochs} epochs) shows garments in minutes; or train the chapter's "
                        "UNet on a GPU.", title="Training", severity="warning", timeout=12)
        self.steps = [step for step, _ in history]
        self.losses = [loss for _, loss in history]
        self.stats = stats
        # a step reported just before a pause must not take the pause's word back
        self._state(PAUSED if self.pause_event.is_set() else f"training on {stats.device} · escape stops")
        self.query_one("#step-label", Label).update(f"step {stats.step}/{stats.total_steps}  recent loss {stats.loss:.4f}")
        self.query_one("#step-bar", ProgressBar).update(total=stats.total_steps, progress=stats.step)
        self.query_one("#epoch-label", Label).update(f"epoch {stats.epoch + 1}/{stats.epochs}")
        self.query_one("#epoch-bar", ProgressBar).update(total=stats.epochs, progress=stats.epoch)
        rate = f"{stats.images_per_s:,.0f} img/s · ETA {fmt_eta(stats.eta_s)}"
        self.query_one("#rate", Label).update(f"{rate} · {stats.device}")
        self._draw_loss()

    def job_finished(self, ev: JobEvent) -> None:
        match ev.result:
            case ClassSamples(label=label, grid=grid, report=report):
                samples = self.query_one("#samples", ImageView)
                samples.image, samples.caption = grid, f"{label} · {fmt_fidelity(report)}"
                if not self.worker.busy(JobKind.TRAIN):
                    self._state(f"shown: {label}")
                self.work_done()
            case NoisingRow(image=image):
                self._show_noising(image)
            case NoNoisingData(reason=why):
                noising = self.query_one("#noising", ImageView)
                noising.image, noising.caption = None, "no data: type an IDX folder or .parquet in data"
                self.notify(why, title="Fashion-MNIST data", severity="warning", timeout=15)
            case WeightsSaved(path=path):
                self.last_saved = path
                self.notify(f"Saved {path}", title="Weights saved")
            case TrainingDone(result=result):
                self.query_one("#epoch-bar", ProgressBar).update(progress=len(result.epoch_losses))
                self._state(f"done: last epoch's mean loss {result.final_loss:.4f} · ctrl+g samples it")
                self.model_source = f"training run (step {result.step})"
                if result.checkpoint:
                    self.form.checkpoint = str(result.checkpoint)

    def job_failed(self, ev: JobEvent) -> None:
        if ev.job.kind in PREVIEWS and ev.cancelled:
            self.work_done(ok=False)  # training took over: nothing to tell
            return
        if ev.job.kind is JobKind.TRAIN:
            ckpt = self.stopped_checkpoint or getattr(self.trainer, "last_checkpoint", None)
            if self.trainer is not None and self.trainer.model is not None:
                self.model_source = "training run (stopped)"
            if ev.cancelled and ckpt:
                self.form.checkpoint = str(ckpt)
                self._state("stopped · checkpoint written · ctrl+g samples it")
            else:
                self._state("stopped" if ev.cancelled else "failed · fix and ctrl+r")
        super().job_failed(ev)

    def _draw_loss(self) -> None:
        plot = self.query_one("#loss", PlotextPlot)
        draw_curves(plot.plt, self.steps, self.losses, self.fidelity)
        plot.refresh()
