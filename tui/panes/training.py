"""Pane 4 — the Fashion-MNIST training monitor (the chapter's class-conditional DDPM).

Start / pause / resume / stop a run of ``core.fashion.Trainer`` on the model worker; a live loss
curve (raw and smoothed), step and epoch progress, images/s, ETA and device; after each epoch (and
on a key) a grid of samples per class; the chapter's row of one image noised at 8 timesteps. With
no run yet it shows the shipped model (``load_shipped``). Checkpoints load and save as safetensors.
"""

from __future__ import annotations

import threading

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, ProgressBar, Select
from textual_plotext import PlotextPlot

from core.errors import UserError
from core.jobs import JobEvent
from tui.messages import Milestone
from tui.panes.base import JobPane
from core.fields import parse_int
from tui.panes.train_views import ema, fmt_eta, noising_strip, parse_grey, sample_grid
from tui.widgets.image_view import ImageView

SAMPLE_STEPS = 50  #: DDIM steps for the per-class grid (the chapter's 1000-step DDPM is slower)
SAMPLES_PER_CLASS = 2


class TrainingPane(JobPane):
    """Fashion-MNIST training monitor.

    | Key | Action |
    | :- | :- |
    | ctrl+r | Start training (resume when paused) |
    | ctrl+b | Pause / resume |
    | escape | Stop (writes a resumable checkpoint) |
    | ctrl+g | Sample a grid per class now |
    | ctrl+o | Load the checkpoint at the path |
    | ctrl+s | Save the current model's weights |
    """

    pane_name = "training"
    BINDINGS = [
        Binding("ctrl+r", "start", "Train"),
        Binding("ctrl+b", "pause", "Pause/resume"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+g", "sample", "Samples"),
        Binding("ctrl+o", "load", "Load ckpt"),
        Binding("ctrl+s", "save", "Save"),
    ]
    DEFAULT_CSS = """
    TrainingPane #tform { height: auto; }
    TrainingPane #tform Input { width: 1fr; }
    TrainingPane #tform #ckpt { width: 3fr; }
    TrainingPane #tform Select { width: 2fr; }
    TrainingPane #middle { height: 1fr; min-height: 6; }
    TrainingPane PlotextPlot { width: 1fr; }
    TrainingPane #stats { width: 36; }
    TrainingPane #stats Label { width: 100%; }
    TrainingPane #stats ProgressBar { width: 100%; }
    TrainingPane #images { height: 1fr; min-height: 5; }
    TrainingPane #samples { width: 1fr; }
    TrainingPane #noising { width: 1fr; }
    """

    def __init__(self, data: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_source = data
        self.pause_event = threading.Event()
        self.losses: list[float] = []
        self.steps: list[int] = []
        self.stats = None  #: the last StepStats
        self.job = None
        self.model_source = ""
        self.last_saved = None
        self._trainer = None  #: the running/last Trainer (its checkpoint path after a stop)
        self.sample_steps = SAMPLE_STEPS
        self._shown_once = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="tform"):
            yield Input("25", id="epochs", type="integer", tooltip="Epochs")
            yield Input("256", id="batch", type="integer", tooltip="Batch size")
            yield Select([("chapter UNet (15.9M)", "chapter"), ("tiny UNet (CPU)", "tiny")],
                         value="chapter", allow_blank=False, id="arch")
            yield Input("", id="ckpt", placeholder="checkpoint .safetensors (ctrl+o loads)")
            yield Input("", id="grey", placeholder="grey guidance 1,30",
                        tooltip="Samples: loss guidance towards a grey LEVEL (0-1) at SCALE (exercise 9); empty = off")
        with Horizontal(id="middle"):
            yield PlotextPlot(id="loss")
            with Vertical(id="stats"):
                yield Label("no run yet · ctrl+r trains", id="state")
                yield Label("step", id="step-label")
                yield ProgressBar(total=100, show_eta=False, id="step-bar")
                yield Label("epoch", id="epoch-label")
                yield ProgressBar(total=100, show_eta=False, id="epoch-bar")
                yield Label("", id="rate")
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
        if not self.app.settings.screenshot and not self.worker.busy("train") and not self.model_source:
            self.show_noising()
            self.show_shipped()

    def show_noising(self) -> None:
        """The chapter's figure: the first training image at 8 timesteps (needs data, no model)."""
        source = self.data_source

        def run(job):
            import core.fashion as fm

            return noising_strip(fm, source)

        self.submit("fashion-noise", run)

    # -- showing a model ---------------------------------------------------------------------
    def _submit_show(self, loader, label: str) -> None:
        try:
            job = self._show_model_job(loader, label)
        except UserError as exc:
            self.notify(str(exc), title="Samples", severity="error")
            return
        self.submit("fashion-show", job)

    def _show_model_job(self, loader, label: str):
        """A job: get a model (``loader(job)``), sample per class and noise one image."""
        steps = self.sample_steps
        grey = parse_grey(self.query_one("#grey", Input).value)
        if grey:
            label += f" · grey guidance {grey[0]:g} x{grey[1]:g}"

        def run(job):
            import core.fashion as fm

            model = loader(job)
            job.resources["fashion"] = model
            grid = sample_grid(fm, model, SAMPLES_PER_CLASS, steps, job.cancel, grey=grey)
            return {"label": label, "grid": grid}

        return run

    def show_shipped(self) -> None:
        def loader(job):
            import core.fashion as fm

            return fm.load_shipped(device=self.app.settings.device)

        self.model_source = "shipped model"
        self._submit_show(loader, "shipped model")

    def action_load(self) -> None:
        path = self.query_one("#ckpt", Input).value.strip()
        if not path:
            self.notify("Type a checkpoint path first (a .safetensors from a run).", severity="warning")
            return

        def loader(job):
            import core.fashion as fm

            return fm.load_model(path, device=self.app.settings.device)

        self.model_source = path
        self._submit_show(loader, path)

    def action_sample(self) -> None:
        def loader(job):
            model = job.resources.get("fashion")
            if model is None:
                import core.fashion as fm

                model = fm.load_shipped(device=self.app.settings.device)
            return model

        self._submit_show(loader, self.model_source or "shipped model")

    def autorun(self) -> None:
        self.show_noising()
        self.show_shipped()

    # -- training ----------------------------------------------------------------------------
    def train_config(self):
        import core.fashion as fm
        from pathlib import Path

        epochs = parse_int(self.query_one("#epochs", Input).value, "epochs", "25")
        batch = parse_int(self.query_one("#batch", Input).value, "batch size", "256")
        arch = self.query_one("#arch", Select).value
        model_cfg = fm.ModelConfig.tiny() if arch == "tiny" else fm.ModelConfig()
        out = str(Path(self.app.settings.output_dir) / "fashion")
        return fm.TrainConfig(epochs=epochs, batch_size=batch, model=model_cfg, out_dir=out,
                              log_every=10, log_seconds=1.0, data=self.data_source)

    def action_start(self) -> None:
        if self.worker.busy("train"):
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
        self.pause_event.clear()
        self.losses, self.steps, self.stats = [], [], None
        self._draw_loss()
        pause, source, steps = self.pause_event, self.data_source, self.sample_steps
        self.query_one("#state", Label).update("loading data…")

        def run(job):
            import core.fashion as fm
            from core.atomic import check_writable

            if config.out_dir:  # before minutes of data loading and an epoch of training
                check_writable(config.out_dir)
            data = fm.load_fashion_mnist(source)
            holder = {}
            history: list[tuple[int, float]] = []

            def on_step(stats) -> None:
                history.append((stats.step, stats.loss))
                job.progress(("step", stats, list(history)))  # the whole curve: updates may be skipped

            def on_epoch(stats) -> None:
                trainer = holder["trainer"]
                model = fm.FashionDDPM(trainer.model, config.model, "training run")
                was_training = trainer.model.training
                trainer.model.eval()
                try:
                    grid = sample_grid(fm, model, SAMPLES_PER_CLASS, steps, job.cancel)
                finally:
                    trainer.model.train(was_training)
                job.progress(Milestone(("epoch", stats, grid)))

            trainer = fm.Trainer(config, data, device=self.app.settings.device, on_step=on_step, on_epoch=on_epoch)
            holder["trainer"] = trainer
            self._trainer = trainer
            result = trainer.run(cancel=job.cancel, pause=pause)
            if result.model is not None:
                job.resources["fashion"] = fm.FashionDDPM(result.model.eval(), config.model, "training run")
            return result

        self.model_source = "training run"
        self.job = self.submit("train", run)

    def action_pause(self) -> None:
        if not self.worker.busy("train"):
            self.notify("No training is running: ctrl+r starts one.", severity="warning")
            return
        if self.pause_event.is_set():
            self.pause_event.clear()
            self.query_one("#state", Label).update("training (resumed)")
        else:
            self.pause_event.set()
            self.query_one("#state", Label).update("paused · ctrl+b resumes (the worker waits)")

    def action_stop(self) -> None:
        if self.worker.cancel("train"):
            self.pause_event.clear()
            self.query_one("#state", Label).update("stopping…")

    def action_save(self) -> None:
        if self.worker.busy("train"):
            self.notify("Checkpoints are written every epoch and on stop (escape), into "
                        f"{self.app.settings.output_dir}/fashion.")
            return
        out_dir = self.app.settings.output_dir

        def run(job):
            from core.fashion.model import write_weights
            from core.outputs import write_new

            model = job.resources.get("fashion")
            if model is None:
                raise UserError("No model to save yet: ctrl+r trains one, ctrl+o loads one.")
            return write_new(out_dir, "fashion-weights", ".safetensors",
                             lambda p: write_weights(model.unet, model.config, p))

        self.submit("fashion-save", run)

    # -- events from the worker --------------------------------------------------------------
    def job_started(self, ev: JobEvent) -> None:
        if ev.job.kind == "train":
            self.query_one("#state", Label).update("training…")

    def job_progress(self, ev: JobEvent) -> None:
        if isinstance(ev.payload, Milestone):
            _, stats, grid = ev.payload.data
            self.query_one("#samples", ImageView).image = grid
            self.query_one("#samples", ImageView).caption = f"samples after epoch {stats.epoch + 1}"
        else:
            _, stats, history = ev.payload
            self._on_step(stats, history)

    def _on_step(self, stats, history: list[tuple[int, float]]) -> None:
        slow = stats.device == "cpu" and stats.eta_s > 3600 and self.query_one("#arch", Select).value != "tiny"
        if self.stats is None and slow:  # say so once, at the run's first report
            self.notify(f"About {fmt_eta(stats.eta_s)} on the CPU. Pick the tiny model for a run in minutes, "
                        "or train the chapter's UNet on a GPU.", title="Training", severity="warning", timeout=12)
        self.steps = [step for step, _ in history]
        self.losses = [loss for _, loss in history]
        self.stats = stats
        self.query_one("#step-label", Label).update(f"step {stats.step}/{stats.total_steps}  loss {stats.loss:.4f}")
        self.query_one("#step-bar", ProgressBar).update(total=stats.total_steps, progress=stats.step)
        self.query_one("#epoch-label", Label).update(f"epoch {stats.epoch + 1}/{stats.epochs}")
        self.query_one("#epoch-bar", ProgressBar).update(total=stats.epochs, progress=stats.epoch)
        rate = f"{stats.images_per_s:,.0f} img/s · ETA {fmt_eta(stats.eta_s)}"
        self.query_one("#rate", Label).update(f"{rate} · {stats.device}")
        self._draw_loss()

    def job_finished(self, ev: JobEvent) -> None:
        kind = ev.job.kind
        if kind == "fashion-show":
            out = ev.result
            self.query_one("#samples", ImageView).image = out["grid"]
            self.query_one("#samples", ImageView).caption = f"samples per class · {out['label']}"
            self.work_done()
        elif kind == "fashion-noise":
            if ev.result is None:
                self.query_one("#noising", ImageView).caption = "noising row: no Fashion-MNIST data (--data)"
            else:
                self.query_one("#noising", ImageView).image = ev.result
        elif kind == "fashion-save":
            self.last_saved = ev.result
            self.notify(f"Saved {ev.result}", title="Weights saved")
        elif kind == "train":
            result = ev.result
            self.query_one("#epoch-bar", ProgressBar).update(progress=len(result.epoch_losses))
            self.query_one("#state", Label).update(f"done: final loss {result.final_loss:.4f}")
            if result.checkpoint:
                self.query_one("#ckpt", Input).value = str(result.checkpoint)

    def job_failed(self, ev: JobEvent) -> None:
        if ev.job.kind == "train":
            ckpt = getattr(self._trainer, "last_checkpoint", None)
            if ev.error_kind == "cancelled" and ckpt:
                self.query_one("#ckpt", Input).value = str(ckpt)
                self.query_one("#state", Label).update("stopped · checkpoint written (ctrl+o loads it)")
            else:
                self.query_one("#state", Label).update("stopped" if ev.error_kind == "cancelled"
                                                       else "failed · ctrl+r restarts")
        super().job_failed(ev)

    def _draw_loss(self) -> None:
        plot = self.query_one("#loss", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title("loss (raw, smoothed)")
        if self.losses:
            plt.plot(self.steps, self.losses, marker="braille", label="raw")
            plt.plot(self.steps, ema(self.losses), marker="braille", label="smoothed")
        plot.refresh()
