"""The training pane's job, run on the model worker: load the data, train, score each epoch.

Progress reaches the pane as ``job.progress`` payloads (:mod:`tui.progress`): ``PhaseText`` as the
run moves on, ``DataLoaded`` once the data loaded, ``TrainerReady`` with the built Trainer,
``TrainingStep`` per logged step (may be skipped: the history is whole each time), ``EpochSamples``
after each epoch and, when stopped, ``CheckpointSaved``. The job never touches the pane. Stopped or
finished, the run's model (its EMA when kept) becomes ``resources["fashion"]``, so the pane's next
samples come from it; only the newest ``keep`` checkpoints stay.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ...core.errors import Cancelled
from ..job_results import TrainingDone
from ..progress import CheckpointSaved, DataLoaded, EpochSamples, PhaseText, TrainerReady, TrainingStep
from .train_views import noising_of, sample_grid
from ...core import fashion as fm
from ...core.atomic import check_writable


def train_job(config, device, pause, steps: int, keep: int, per_class: int):
    """A job function training ``config`` on ``device``, waiting while ``pause`` is set; each epoch's grid
    shows ``per_class`` samples of ``steps`` DDIM steps."""

    def run(job):
        from ...core.fashion.checkpoint import prune
        from ...core.fashion.monitor import epoch_model, score_model

        if config.out_dir:  # before minutes of data loading and an epoch of training
            check_writable(config.out_dir)
        where = Path(config.data).name or config.data if config.data else "the Hub's fashion_mnist"  # fits the state line
        job.progress(PhaseText(f"loading data from {where}…"))
        data = fm.load_fashion_mnist(config.data)
        job.progress(DataLoaded(config.data, len(data)))
        job.progress(noising_of(fm, data))  # the chapter's noising figure, from the data this run uses
        holder, written = {}, []
        history: list[tuple[int, float]] = []

        def on_step(stats) -> None:
            history.append((stats.step, stats.loss))
            job.progress(TrainingStep(stats, list(history)))  # the whole curve: updates may be skipped

        def on_epoch(stats) -> None:
            trainer = holder["trainer"]
            if stats.checkpoint:
                written.append(stats.checkpoint)
                prune(written, keep)
            step = (stats.epoch + 1) * trainer.steps_per_epoch
            scored = score_model(epoch_model(trainer), steps=steps, cancel=job.cancel)
            job.progress(EpochSamples(stats, step, sample_grid(scored, per_class), scored.report))

        trainer = fm.Trainer(config, data, device=device, on_step=on_step, on_epoch=on_epoch)
        holder["trainer"] = trainer
        job.progress(TrainerReady(trainer))
        job.progress(PhaseText(f"training on {trainer.device.type}…"))
        try:
            return TrainingDone(trainer.run(cancel=job.cancel, pause=pause))
        except Cancelled:
            if trainer.last_checkpoint:  # the pane hears of it as a message (the worker never writes it)
                with contextlib.suppress(Cancelled):
                    job.progress(CheckpointSaved(trainer.last_checkpoint))
            raise
        finally:  # stopped or finished: ctrl+g samples this run's model, as the caption says
            if trainer.model is not None:
                job.resources["fashion"] = epoch_model(trainer)
                if trainer.last_checkpoint and trainer.last_checkpoint not in written:
                    written.append(trainer.last_checkpoint)
                    prune(written, keep)


    return run
