"""What the sweep and exercises panes share: a grid of image cells filled by one job.

Each cell shows the live x0 preview after every step, then the decoded image with its caption;
focusing a finished cell hands its image to the latents pane. ``escape`` cancels the job, ``ctrl+s``
saves the grid (with the A1111 ``parameters`` text) off the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from textual import work
from textual.containers import Grid
from textual.widgets import Input, Label, ProgressBar

from ...core.errors import UserError
from ...core.jobs import JobEvent
from ..job_kinds import JobKind
from ..job_results import GridSampled
from ..messages import ImageSelected
from .job_pane import JobPane
from ..progress import BatchStarted, CellsDone, StepPreview
from ..widgets.image_view import ImageView


@dataclass(frozen=True)
class GridReporting:
    """``core.grid_run.run_grid``'s three callbacks for one job (passed as its ``callback``, ``on_batch``
    and ``on_cells``)."""

    callback: Callable[[object], None]  #: every sampling step (sends its x0 preview)
    on_batch: Callable[[list[int]], None]  #: a batch starts: its cells
    on_cells: Callable[[list[int], object], None]  #: a batch is done: its cells' images


class GridCell(ImageView):
    """One cell's image; focus it to select it for the latents pane.

    What it shows may be a preview, a heat-map overlay or a timeline frame; ``generated`` is the cell's own
    finished image, the one the latents pane encodes (issue 27: ctrl+g encoded the overlay)."""

    def __init__(self, index: int, caption: str) -> None:
        super().__init__(caption=caption, placeholder="waiting", focusable=True, id=f"cell-{index}")
        self.index = index
        self.generated = None  #: the finished image (PIL), once its batch is done

    def area(self) -> tuple[int, int]:
        """The smallest sibling's area, so every image in the grid has the same size."""
        cells = [c for c in self.parent.children if isinstance(c, GridCell)] if self.parent else [self]
        return (min(c.content_region.width for c in cells), min(c.content_region.height for c in cells))

    def on_focus(self) -> None:
        if self.generated is not None:
            self.post_message(ImageSelected(self.generated, self.caption))


class GridPane(JobPane):
    """A pane whose job samples a grid: cells, live previews, results, cancel and save."""

    job_kind: JobKind  #: the kind of job this pane submits (SWEEP, EXERCISE)
    says_when_queued = True  #: the status line says what the grid waits for
    cell_class: type[GridCell] = GridCell

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result = None  #: the GenerationResult the cells show (None while a run fills them)
        self.last_finished = None  #: the last run that finished, kept through a later run cancelled or failed
        self.last_saved = None  #: path of the last saved grid
        self.job = None
        self.running_cells: list[int] = []  #: the cells the running batch samples (its previews land there)

    # -- cells ---------------------------------------------------------------------------------
    def layout_cells(self, captions: list[str]) -> None:
        """One cell per caption: reuse existing cells (cleared), mount or remove the difference."""
        grid = self.query_one("#grid", Grid)
        grid.styles.grid_size_columns = min(4, len(captions))
        cells = self.cells
        for cell in cells[len(captions):]:
            cell.remove()
        for cell, caption in zip(cells, captions):
            cell.image, cell.caption, cell.generated = None, caption, None
        self.running_cells = list(range(len(captions)))
        extra = [self.cell_class(i, c) for i, c in enumerate(captions) if i >= len(cells)]
        if extra:
            grid.mount_all(extra)

    @property
    def cells(self) -> list[GridCell]:
        """The live cells, in order (cells being removed are skipped)."""
        cells = [c for c in self.query(self.cell_class) if not c._closing and c.parent is not None]
        return sorted(cells, key=lambda c: c.index)

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    def status(self, text: str) -> None:
        self.query_one("#status", Label).update(text)

    # -- the job -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.worker.cancel(self.job_kind):
            self.status("cancelling…")

    # -- progress (both grids: run_grid's on_batch / on_cells, the sampler's per-step callback) ----
    def grid_job(self, job, on_step: Callable[[object], None] | None = None) -> GridReporting:
        """The callbacks that report a ``core.grid_run.run_grid`` run of ``job`` to this pane (they run on
        the worker and only send payloads). ``on_step(info)``, if given, also hears every sampling step
        (the sweep's timeline), before its preview is sent."""

        def step(info) -> None:
            if on_step is not None:
                on_step(info)
            job.progress(StepPreview(info.index, info.total, info.timestep, info.preview))

        return GridReporting(
            callback=step,
            on_batch=lambda cells: job.progress(BatchStarted(tuple(cells))),
            on_cells=lambda cells, batch: job.progress(CellsDone(tuple(cells), batch.images)),
        )

    def grid_progress(self, payload) -> bool:
        """Show a grid payload (True) or leave it to the pane (False): a batch's previews land in its
        own cells, a finished batch's images stay while the next batch samples."""
        match payload:
            case BatchStarted(cells=cells):
                self.running_cells = list(cells)
            case CellsDone(cells=cells, images=images):
                self.running_cells = list(cells)
                self._fill(cells, images, finished=True)
            case StepPreview(index=index, total=total, timestep=timestep, preview=preview):
                self._fill(self.running_cells, preview)
                batch = self.running_cells
                where = "" if len(batch) >= len(self.cells) else (
                    f"cell {batch[0] + 1}/{len(self.cells)} · " if len(batch) == 1
                    else f"cells {batch[0] + 1}-{batch[-1] + 1} · ")
                self.show_step(index, total, timestep, where)
            case _:
                return False
        return True

    def _fill(self, indices, images, finished: bool = False) -> None:
        """Show ``images`` in the cells numbered ``indices`` (cells a new layout removed are skipped);
        ``finished``: they are the cells' own images (else previews)."""
        cells = self.cells
        for i, image in zip(indices, images):
            if i < len(cells):
                cells[i].image = image
                cells[i].generated = image if finished else cells[i].generated

    def show_step(self, index: int, total: int, timestep: float, where: str = "") -> None:
        """The progress bar and status line of a sampling step."""
        self.query_one("#progress", ProgressBar).update(total=total, progress=index + 1)
        counted = f"step {index + 1}/{total}"
        asked = self.query("#steps").first().value.strip() if self.query("#steps") else ""
        if asked.isdigit() and total > int(asked):  # PNDM runs one PRK warm-up step more than asked
            counted += f" ({asked} steps + {total - int(asked)} PNDM warm-up)"
        self.status(f"{where}{counted} · t={timestep:.0f} · x0 preview")

    def job_finished(self, ev: JobEvent) -> None:
        match ev.result:
            case GridSampled(result=result):
                self.show_result(result, ev.seconds)

    def show_result(self, result, seconds: float) -> None:
        """The finished images and captions, the status line, and the selection for the latents pane."""
        self.result = self.last_finished = result
        headline = self.headline()
        for cell, image, caption in zip(self.cells, result.images, result.captions):
            cell.image, cell.caption, cell.generated = image, caption, image
        s = result.settings
        seeds = list(dict.fromkeys(result.seed(i) for i in range(len(result.images))))  # a seed axis: each cell's
        seed = f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))
        line = f"{headline}{seed}, {s.steps} steps, {result.scheduler_name}"
        if getattr(result, "refiner_name", ""):  # core.refiner: base, then the refiner
            line += f" ({result.base_steps} base → {result.refiner_steps} refiner)"
        if self.ctx.show_timings:
            line += f", {result.timings.get('total_s', seconds):.1f} s"
        self.status(line + " · ctrl+s saves the grid")
        if result.dropped_tokens:
            self.notify(f"Dropped (past the window or the chunks): {result.dropped_tokens!r}", severity="warning")
        self.post_message(ImageSelected(result.images[0], result.captions[0]))
        self.work_done()

    def job_failed(self, ev: JobEvent) -> None:
        kept = " · ctrl+s saves the last finished grid" if self.last_finished is not None else ""
        self.status(("cancelled" if ev.cancelled else "failed") + " · ctrl+r runs again" + kept)
        super().job_failed(ev)

    def autorun(self) -> None:
        self.action_run()

    def headline(self) -> str:
        """The start of the status line of a finished grid ("done: ")."""
        return "done: "

    # -- saving --------------------------------------------------------------------------------
    def grid_file(self, result) -> tuple[str, str]:
        """(file stem, parameters text) for the saved grid."""
        raise NotImplementedError

    def action_save(self) -> None:
        result = self.result or self.last_finished  # after a cancelled run: the one before it, as it finished
        if result is None:
            self.notify("Nothing to save yet: ctrl+r runs first.", severity="warning")
            return
        self.save_grid(result)

    @work(thread=True, exclusive=True, group="save")
    def save_grid(self, result) -> None:
        """Write the grid PNG (with the parameters text) off the UI thread."""
        from ...core.outputs import result_grid, save_png

        try:
            stem, params = self.grid_file(result)
            path = save_png(result_grid(result), self.ctx.settings.output_dir, stem, params)
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Save failed", severity="error")
            return
        self.app.call_from_thread(self._saved, path)  # the pane's attributes are set on the UI thread

    def _saved(self, path) -> None:
        self.last_saved = path
        self.notify(f"Saved {path}", title="Grid saved")
