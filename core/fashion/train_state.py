"""Where a training run stands (``TrainState``): what a checkpoint keeps beside the weights and the
optimizer (its ``fashion_state`` JSON, ``core.fashion.checkpoint``), typed, and checked when a resume loads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .train_config import TrainConfig


@dataclass(frozen=True)
class TrainState:
    """Where a run stands: what a checkpoint keeps beside the weights, and where a resume continues."""

    step: int = 0  #: optimizer steps taken
    epoch: int = 0  #: the epoch the run was in
    step_in_epoch: int = 0  #: steps of that epoch done (``steps_per_epoch``: the epoch is done)
    losses: tuple[float, ...] = ()  #: every step's loss so far
    epoch_losses: tuple[float, ...] = ()  #: every finished epoch's mean loss
    elapsed_s: float = 0.0  #: training time so far (pauses left out)
    num_images: int | None = None  #: the data's size (a run stopped mid-epoch resumes on the same data only)

    @classmethod
    def from_checkpoint(cls, state: dict, num_images: int) -> TrainState:
        """The state of ``load_checkpoint``'s dict (its fields' types checked there), checked against
        the data a resume gives: a run stopped mid-epoch continues only on data of the same size."""
        loaded = cls(step=int(state["step"]), epoch=int(state["epoch"]), step_in_epoch=int(state["step_in_epoch"]),
                     losses=tuple(state.get("losses", [])), epoch_losses=tuple(state.get("epoch_losses", [])),
                     elapsed_s=float(state.get("elapsed_s", 0.0)), num_images=state.get("num_images"))
        if loaded.num_images != num_images and loaded.step_in_epoch:
            raise UserError("The checkpoint was stopped mid-epoch on other data; resume with the same --data")
        return loaded

    def to_json(self, cfg: TrainConfig) -> dict:
        """The ``fashion_state`` a checkpoint stores (``core.fashion.checkpoint.STATE_FIELDS``)."""
        return {
            "step": self.step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "num_images": self.num_images, "seed": cfg.seed,
            "losses": list(self.losses), "epoch_losses": list(self.epoch_losses),
            "elapsed_s": self.elapsed_s, "train_config": cfg.to_dict(),
        }
