"""The app's panes, in tab order: one :class:`PaneSpec` each, the one list the app, its keys and the
command palette read (tab titles, ``f2``-``f6``, the field a pane focuses when shown, how it is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from textual.widget import Widget

from ..config import Settings
from .exercises import ExercisesPane
from .latents import LatentsPane
from .sweep import SweepPane
from .tokens import TokensPane
from .training import TrainingPane


@dataclass(frozen=True)
class PaneSpec:
    """One pane: its id (``--pane``, ``show_pane('id')``), key, title, help line, first focus and class."""

    id: str
    key: str  #: the key that shows it
    title: str  #: the tab's and the palette's name
    tooltip: str  #: the key's help line
    focus: str  #: the selector of the field focused when the pane is shown
    cls: type[Widget]
    make: Callable[[Settings, str], Widget]  #: ``make(settings, sweep_size)``: the pane, as the app starts

    @property
    def tab_title(self) -> str:
        """Each tab names the key that opens it (``f3 Sweep``)."""
        return f"{self.key} {self.title}"


PANES: tuple[PaneSpec, ...] = (
    PaneSpec("tokens", "f2", "Prompt", "The prompt, the negative prompt and their tokens", "#prompt", TokensPane,
             lambda s, size: TokensPane(s.prompt, s.model)),
    PaneSpec("sweep", "f3", "Sweep", "One seed at several guidance scales, or any X/Y grid", "#scales", SweepPane,
             lambda s, size: SweepPane(seed=s.seed, steps=s.steps, size=size)),
    PaneSpec("latents", "f4", "Latents", "Encode an image, see its 4 latent channels, decode", "#path", LatentsPane,
             lambda s, size: LatentsPane()),
    PaneSpec("training", "f5", "Training", "Train the class-conditional Fashion-MNIST model", "#epochs",
             TrainingPane, lambda s, size: TrainingPane(data=s.data)),
    PaneSpec("exercises", "f6", "Exercises", "Sweep a negative prompt, img2img strength, colour loss or SDXL size",
             "#values", ExercisesPane, lambda s, size: ExercisesPane(seed=s.seed, steps=s.steps)),
)


def pane_spec(pane_id: str) -> PaneSpec:
    """The pane called ``pane_id``."""
    return next(p for p in PANES if p.id == pane_id)
