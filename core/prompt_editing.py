"""Prompt editing in AUTOMATIC1111's syntax: the prompt changes part-way through sampling.

``[from:to:when]`` reads ``from`` for the first steps and ``to`` from a step on; ``[to:when]`` adds ``to``
from that step on (``from`` is empty); ``[from::when]`` removes ``from`` at that step (``to`` is empty).
Several edits may stand in one prompt, each with its own ``when``.

The schedule, precisely: with N sampling steps (the steps setting) and the 0-based step index i,

    k = int(when * N) if when < 1 else int(when), clamped to [0, N]
    step i reads ``from`` when i < k, else ``to``.

So ``when`` below 1 is a fraction of the steps and a whole number is a step: ``[a:b:N]`` (or any when >= N)
is the plain prompt ``a`` exactly, ``[a:b:0]`` the plain ``b`` exactly. The step index is the step's place
in the full schedule of N timesteps: the sampling loop's index for text-to-image; image-to-image, which skips
the first ``N - int(N * strength)`` steps, starts counting there; an SDXL refiner continues from its cut-off.

What is an edit: a ``[...]`` whose last ``:``-separated part (colons inside ``(...)`` or a nested ``[...]``
do not count) is a number, with two or three parts. Every other bracket is left alone for
``core.prompt_weights``: a plain ``[word]`` still de-emphasises, ``(word:1.2)`` still weighs, and weights
inside ``from``/``to`` are read after the edit is resolved, as part of the resolved text. ``\\[`` and ``\\]``
are literal. An edit inside another edit is refused with one line naming its position (a plain bracket
inside or around an edit is fine: ``[[a]:b:0.5]``, ``([a:b:0.5]:1.2)``).

``parse_edits(text) -> EditedPrompt`` (cached: the result is frozen) and ``EditedPrompt.schedule(steps) ->
PromptSchedule``: the segments (which resolved text holds for which steps), computed once where a request
is sampled (``core.sampler.denoise``; ``RowSchedule`` pairs a row's prompt and negative prompt). No torch.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import UserError

_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


@dataclass(frozen=True)
class Edit:
    """One ``[from:to:when]`` of a prompt: ``position`` is its ``[`` (0-based character offset)."""

    position: int
    before: str
    after: str
    when: float

    def switch(self, steps: int) -> int:
        """k: the first step (0-based) that reads ``after``, in ``[0, steps]``."""
        k = self.when * steps if self.when < 1 else self.when
        k = int(k) if abs(k) < 1e18 else (steps if k > 0 else 0)  # 1e308 is past every step
        return min(max(k, 0), steps)


@dataclass(frozen=True)
class Segment:
    """Steps ``start`` to ``stop - 1`` (0-based) read ``text``; ``choices`` is each edit's part there."""

    start: int
    stop: int
    text: str
    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """1-based, as the step counter shows them: ``steps 1-12``, ``step 13``."""
        if self.stop - self.start == 1:
            return f"step {self.start + 1}"
        return f"steps {self.start + 1}-{self.stop}"


@dataclass(frozen=True)
class PromptSchedule:
    """A prompt over ``steps`` steps: one ``Segment`` per run of steps reading one resolved text."""

    prompt: str  #: as typed
    steps: int
    segments: tuple[Segment, ...]

    @property
    def edited(self) -> bool:
        """More than one text: the conditioning switches during the run."""
        return len(self.segments) > 1

    @property
    def switches(self) -> tuple[int, ...]:
        """The 0-based steps where the text changes."""
        return tuple(s.start for s in self.segments[1:])

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.text for s in self.segments))

    def segment_at(self, step: int) -> Segment:
        for segment in self.segments:
            if step < segment.stop:
                return segment
        return self.segments[-1]

    def at(self, step: int) -> str:
        """The text step ``step`` (0-based) reads."""
        return self.segment_at(step).text

    def change_at(self, step: int) -> str | None:
        """What changes at ``step``: ``'a sneaker' → 'a boot'``, ``+ 'hat'``, ``− 'hat'``; None if nothing."""
        for before, after in zip(self.segments, self.segments[1:]):
            if after.start == step:
                return ", ".join(_change(a.strip(), b.strip())
                                 for a, b in zip(before.choices, after.choices) if a != b) or "text changes"
        return None


def _change(before: str, after: str) -> str:
    if not before:
        return f"+ {after!r}"
    if not after:
        return f"− {before!r}"
    return f"{before!r} → {after!r}"


@dataclass(frozen=True)
class EditedPrompt:
    """A prompt read for edits: literal text and ``Edit`` parts in order (no edits: one literal part)."""

    text: str
    parts: tuple[str | Edit, ...]

    @property
    def edits(self) -> tuple[Edit, ...]:
        return tuple(p for p in self.parts if isinstance(p, Edit))

    def resolve(self, step: int, steps: int) -> str:
        """The text step ``step`` of ``steps`` reads (``core.prompt_weights`` then weighs it)."""
        return "".join(p if isinstance(p, str) else (p.before if step < p.switch(steps) else p.after)
                       for p in self.parts)

    def schedule(self, steps: int) -> PromptSchedule:
        edits = self.edits
        if not edits:
            return PromptSchedule(self.text, steps, (Segment(0, steps, self.text),))
        marks = sorted({0, steps, *(e.switch(steps) for e in edits)})
        segments: list[Segment] = []
        for start, stop in zip(marks, marks[1:]):
            if start >= stop:
                continue
            choices = tuple(e.before if start < e.switch(steps) else e.after for e in edits)
            text = self.resolve(start, steps)
            if segments and segments[-1].text == text:  # [a:a:0.5]: nothing changes
                last = segments[-1]
                segments[-1] = Segment(last.start, stop, text, last.choices)
            else:
                segments.append(Segment(start, stop, text, choices))
        return PromptSchedule(self.text, steps, tuple(segments))


@dataclass
class _Open:
    """A ``[`` still open while scanning: where, its top-level colons, its ``(`` depth, an edit inside it."""

    position: int
    colons: list[int]
    rounds: int = 0
    inner_edit: int | None = None


@functools.lru_cache(maxsize=512)
def parse_edits(text: str, what: str = "the prompt") -> EditedPrompt:
    """``"a [sneaker:boot:0.5]"`` -> parts ``"a "``, ``Edit(2, "sneaker", "boot", 0.5)``.

    One scan (linear in the text, so a hostile paste stays cheap); ``UserError`` for an edit inside an
    edit or with more than three parts, naming its position."""
    stack: list[_Open] = []
    edits: list[tuple[int, int, Edit]] = []  # (start, end exclusive, edit)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            stack.append(_Open(i, []))
        elif c == "]" and stack:
            frame = stack.pop()
            edit = _edit(text, frame, i, what)
            inner = frame.inner_edit
            if edit is not None:
                if inner is not None:
                    raise UserError(f"{what} has a prompt edit at {inner} inside the edit at {frame.position}: "
                                    "edits cannot nest; write them side by side, e.g. [a:b:0.3] [c:d:0.6].")
                edits.append((frame.position, i + 1, edit))
            if stack and stack[-1].inner_edit is None:
                stack[-1].inner_edit = frame.position if edit is not None else inner
        elif stack and c == "(":
            stack[-1].rounds += 1
        elif stack and c == ")" and stack[-1].rounds:
            stack[-1].rounds -= 1
        elif stack and c == ":" and not stack[-1].rounds:
            stack[-1].colons.append(i)
        i += 1
    parts: list[str | Edit] = []
    at = 0
    for start, end, edit in sorted(edits, key=lambda e: e[0]):
        if start > at:
            parts.append(text[at:start])
        parts.append(edit)
        at = end
    if at < n or not parts:
        parts.append(text[at:])
    return EditedPrompt(text, tuple(parts))


def _edit(text: str, frame: _Open, close: int, what: str) -> Edit | None:
    """The bracket ``text[frame.position:close + 1]`` as an ``Edit``, or None for a plain bracket."""
    if not frame.colons:
        return None
    bounds = [frame.position + 1, *(c + 1 for c in frame.colons)]
    ends = [*frame.colons, close]
    parts = [text[a:b] for a, b in zip(bounds, ends)]
    if not _NUMBER.fullmatch(parts[-1]):
        return None
    if len(parts) > 3:
        raise UserError(f"{what} has a prompt edit at {frame.position} with {len(parts)} ':'-parts: write "
                        "[from:to:when], [to:when] or [from::when] (when: a fraction of the steps or a step).")
    before, after = (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])
    return Edit(frame.position, before, after, float(parts[-1]))


def schedule(text: str, steps: int, what: str = "the prompt") -> PromptSchedule:
    """``text``'s schedule over ``steps`` steps (a plain prompt: one segment, the text itself)."""
    if "[" not in text or ":" not in text:  # no edit can stand in it: skip the scan
        return PromptSchedule(text, steps, (Segment(0, steps, text),))
    return parse_edits(text, what).schedule(steps)


@dataclass(frozen=True)
class RowSchedule:
    """One row's prompt and negative prompt over the run's steps."""

    prompt: PromptSchedule
    negative: PromptSchedule

    @property
    def steps(self) -> int:
        return self.prompt.steps

    @property
    def switches(self) -> tuple[int, ...]:
        return tuple(sorted({*self.prompt.switches, *self.negative.switches}))

    def texts_at(self, step: int) -> tuple[str, str]:
        """(prompt, negative prompt) as step ``step`` reads them."""
        return self.prompt.at(step), self.negative.at(step)

    def change_at(self, step: int) -> str | None:
        """``prompt 'a sneaker' → 'a boot'`` (and/or the negative's change) at ``step``, or None."""
        said = [f"{name} {change}" for name, sched in (("prompt", self.prompt), ("negative", self.negative))
                if (change := sched.change_at(step)) is not None]
        return " · ".join(said) or None


def row_schedules(prompt: str, rows: list, steps: int) -> list[RowSchedule]:
    """Each ``core.batch_rows.Row``'s schedule: its own prompt (else ``prompt``) and its negative prompt."""
    return [RowSchedule(schedule(prompt if r.prompt is None else r.prompt, steps),
                        schedule(r.negative_prompt, steps, "the negative prompt")) for r in rows]
