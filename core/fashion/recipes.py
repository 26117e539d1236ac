"""Training recipes: which UNet, how long, what batch, learning rate and weight EMA, and what a run shows.

Two recipes are named, and the training pane and ``fashion train`` start from them:

- ``CPU``: the default where there is no GPU. A learner on a 2-core machine should see garments within
  minutes, and the chapter's recipe cannot do that there (its 15.9M UNet takes hours; the 42k ``tiny`` UNet at
  batch 256 is pure noise after 3 epochs, class fidelity 10 %). So: the ``small`` UNet (four levels of one
  ResNet block, 16-64 channels, 1.0M parameters, no attention), batch 64 for four times the steps per epoch,
  AdamW at 2e-3, and an EMA of the weights (0.995, a horizon of ~200 steps) to sample from. Measured on
  2 cores with ``bench/bench_fashion_cpu.py`` (docs/benchmarks.md): see ``CPU.expect``.
- ``SHIPPED``: the shipped model's (``assets/fashion/MODEL_CARD.md``): the chapter's UNet, batch 256, EMA
  0.999, 400 epochs of the 8k subset (~12,500 steps), a GPU recipe.

``MODELS`` names the UNets a recipe or the pane's model field can pick; ``model_config(name)`` builds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this module stays cheap (no torch): the training pane's form reads it
    from .model import ModelConfig
    from .train_config import TrainConfig

#: the UNets a recipe or the pane's model field can pick (``model_config(name)`` builds one)
MODELS = ("small", "tiny", "chapter")


def model_config(name: str) -> ModelConfig:
    """The ``ModelConfig`` of ``name`` (one of ``MODELS``): ``small`` the CPU recipe's 1.0M UNet
    (``ModelConfig.small``), ``tiny`` the 42k test UNet (``ModelConfig.tiny``), ``chapter`` the chapter's 15.9M UNet."""
    from .model import ModelConfig

    builders = {"small": ModelConfig.small, "tiny": ModelConfig.tiny, "chapter": ModelConfig}
    if name not in builders:
        raise ValueError(f"no model {name!r}: one of {', '.join(MODELS)}")
    return builders[name]()


@dataclass(frozen=True)
class Recipe:
    """A training recipe (``config()`` turns it into a ``TrainConfig``) and what a learner sees from it."""

    name: str
    model: str  #: a key of ``MODELS``
    epochs: int
    batch_size: int
    lr: float
    ema_decay: float
    expect: str = ""  #: one line (at most 78 characters: the form's why-line at 80 columns) of what a run shows

    def config(self, **fields) -> TrainConfig:
        """A ``TrainConfig`` of this recipe, ``fields`` (TrainConfig's) on top; not yet validated."""
        from .train_config import TrainConfig

        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, ema_decay=self.ema_decay,
                          model=model_config(self.model))
        for key, value in fields.items():
            setattr(cfg, key, value)
        return cfg


CPU = Recipe("CPU", model="small", epochs=10, batch_size=64, lr=2e-3, ema_decay=0.995,
             expect="CPU recipe: garment shapes in ~2 min, most classes clear by ~4 (fidelity ~60%)")
SHIPPED = Recipe("shipped", model="chapter", epochs=400, batch_size=256, lr=3e-4, ema_decay=0.999,
                 expect="the shipped model's recipe: a GPU run (~12,500 steps)")
