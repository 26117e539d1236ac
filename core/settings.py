"""The settings of one sampling request: everything that decides an image, together with the model.

``SampleSettings.validate`` is the one check of them (a one-line ``UserError`` naming the fix), and it
checks once: a form validates at the key press, ``core.sampler.sample`` trusts that unless a field changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .guidance import check_scale
from .errors import UserError
from .inputs import check_seed, check_text
from .chunks import check_mode
from .finite import check_color_scale
from .prompt_editing import schedule
from .prompt_weights import check_weights
from .schedulers import canonical_name

MAX_STEPS = 1000  #: a scheduler may take fewer (``core.schedulers.set_steps`` says how many)
MAX_SIDE = 4096


@dataclass
class SampleSettings:
    """Everything that decides an image (together with the model)."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 30
    guidance_scale: float = 7.5
    seed: int = 0
    width: int | None = None  #: None: the model's own size
    height: int | None = None
    scheduler: str | None = None  #: None: the model's own scheduler
    init_image: object = field(default=None, repr=False)  #: PIL image: image-to-image from it
    strength: float = 0.8  #: image-to-image: share of the schedule that is re-run (1 = ignore the image)
    color_target: tuple[float, float, float] | None = None  #: loss guidance towards this RGB (0-1)
    color_scale: float = 0.0  #: loss guidance strength; 0 = off
    long_prompt: str = "chunk"  #: past 75 tokens: "chunk" (A1111/ComfyUI) or "truncate" (diffusers)

    def __setattr__(self, name: str, value) -> None:
        """Any change undoes a past ``validate``: the next one checks again."""
        object.__setattr__(self, "_valid_for", None)
        object.__setattr__(self, name, value)

    def validate(self, multiple: int = 8) -> SampleSettings:
        """Raise ``UserError`` naming the fix for anything a run cannot use; returns ``self``.

        Checks once: settings validated for this size ``multiple`` and unchanged since are not checked
        again (the form checks them at the key press, ``core.sampler.sample`` trusts that).
        """
        if getattr(self, "_valid_for", None) == multiple:
            return self
        self._check(multiple)
        object.__setattr__(self, "_valid_for", multiple)
        return self

    def _check(self, multiple: int) -> None:
        check_text(self.prompt)
        check_text(self.negative_prompt, "the negative prompt")

        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise UserError(f"steps must be a whole number from 1 to {MAX_STEPS} (got {self.steps}): try 30.")
        for text, what in ((self.prompt, "the prompt"), (self.negative_prompt, "the negative prompt")):
            for resolved in schedule(text, self.steps, what).texts:  # prompt edits: each text the run reads
                check_weights(resolved, what)
        self.guidance_scale = check_scale(self.guidance_scale)
        check_seed(self.seed)
        for side, value in (("width", self.width), ("height", self.height)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < multiple or value % multiple:
                raise UserError(f"{side} {value} must be a positive multiple of {multiple}: e.g. {multiple * 64}.")
            if value > MAX_SIDE:
                raise UserError(f"{side} {value} is larger than {MAX_SIDE}: pick a smaller size.")
        if self.init_image is not None:
            if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength) and 0 < self.strength <= 1):
                raise UserError(f"strength must be in (0, 1] (got {self.strength}): try 0.6.")
            if int(self.steps * self.strength) < 1:
                raise UserError(f"{self.steps} steps x strength {self.strength:g} runs no step: raise either.")

        self.color_scale = check_color_scale(self.color_scale)

        check_mode(self.long_prompt)
        if self.scheduler is not None:
            self.scheduler = canonical_name(self.scheduler)
