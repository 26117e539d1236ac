"""Pane 3 — the VAE: encode an image to 4 latent channels, look at them, decode it back.

The image is the one selected in the sweep grid or any file (the path input completes file names).
The round trip runs on the model worker (``core.vae.round_trip``); the pane shows the input, each
latent channel normalised with its min/max, the reconstruction with its PSNR, and the sizes as
computed from the actual tensors (e.g. 786,432 -> 16,384 values, 48x).
"""

from __future__ import annotations


from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label

from ..config import MAX_FIELD_CHARS
from ...core.jobs import JobEvent
from ..job_kinds import JobKind
from ..job_results import RoundTripped
from ..messages import ImageEncoded
from .job_pane import JobPane
from ..widgets.image_view import ImageView
from ..widgets.path_suggester import PathSuggester
from ...core.settings import SampleSettings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class EqualRow(Horizontal):
    """A row of equally wide tiles: ``1fr`` shares out the odd cells, so at 120 columns the last of six
    tiles was 20 cells to the others' 19 and its square image one row taller; each gets the same whole
    number of cells instead (the spare cells, fewer than the tiles, are split either side)."""

    def on_resize(self) -> None:
        tiles = list(self.children)
        if not tiles:
            return
        gaps = sum(tile.styles.margin.right for tile in tiles)
        width = max(1, (self.content_region.width - gaps) // len(tiles))
        for tile in tiles:
            if tile.styles.width is None or tile.styles.width.cells != width:
                tile.styles.width = width


class LatentsPane(JobPane):
    """VAE latents and round trip.

    | Key | Action |
    | :- | :- |
    | enter | Encode/decode the image at the typed path |
    | right | Accept the path completion |
    | ctrl+g | Use the image selected in the sweep grid |
    | ctrl+r | Run again on the current source |
    """

    pane_name = "latents"
    BINDINGS = [
        Binding("ctrl+g", "use_selected", "Use sweep image", tooltip="Encode/decode the sweep's selected cell"),
        Binding("ctrl+r", "run", "Encode/decode", tooltip="Round-trip the image file typed in the path"),
    ]
    DEFAULT_CSS = """
    LatentsPane #path { width: 1fr; }
    LatentsPane #sizes, LatentsPane #source { height: 1; padding: 0 1; }
    LatentsPane #source { width: 100%; height: auto; max-height: 3; }  /* the notes (greyscale VAE, centre crop) wrap */
    LatentsPane #row { height: 1fr; align-horizontal: center; }
    LatentsPane #row ImageView { width: 1fr; margin-right: 1; }  /* EqualRow sets a whole number of cells */
    LatentsPane #row #recon { margin-right: 0; }
    """

    def __init__(self, path: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_path = path
        self.selected = None  #: (image, caption) from the sweep grid
        self.source = None  #: what the last run used: a path string or "sweep: caption"
        self.report = None  #: the last LatentReport

    def compose(self) -> ComposeResult:
        yield Input(self._init_path, placeholder="Image file (enter to encode; ctrl+g uses the sweep's image)",
                    id="path", suggester=PathSuggester(IMAGE_SUFFIXES), max_length=MAX_FIELD_CHARS)
        yield Label("Encode an image: type a path, or ctrl+g for the image selected in the sweep.", id="source")
        yield Label("", id="sizes")
        with EqualRow(id="row"):
            yield ImageView(caption="input", id="input")
            for c in range(4):
                yield ImageView(caption=f"latent c{c}", id=f"c{c}")
            yield ImageView(caption="round trip", id="recon")

    def set_selected(self, image, caption: str) -> None:
        self.selected = (image, caption)

    @on(Input.Submitted, "#path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.run_path(event.value)

    def action_run(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        if value:
            self.run_path(value)
        elif self.selected is not None:
            self.action_use_selected()
        else:
            self.notify("Type an image path, or run a sweep and press ctrl+g.", severity="warning")

    def run_path(self, value: str) -> None:
        value = value.strip()
        if not value:
            self.notify("Type the path of an image file first.", severity="warning")
            return

        def load(job):
            from ...core.vae import load_image

            return load_image(value)

        self._start(load, value)

    def action_use_selected(self) -> None:
        if self.selected is None:
            self.notify("No generated image yet: run a sweep (ctrl+r there) and select a cell.",
                        severity="warning")
            return
        image, caption = self.selected
        self._start(lambda job: image, f"sweep image ({caption})")

    def _start(self, get_image, label: str) -> None:
        self.source = label
        self.query_one("#source", Label).update(f"encoding {label}…")
        seed = self.ctx.settings.seed

        def run(job):
            from ...core.vae import round_trip
            from ..worker import require_model

            model = require_model(job)
            image = get_image(job)
            job.check()
            return RoundTripped(round_trip(model, image, seed=seed))

        self.submit(JobKind.LATENTS, run)

    def job_finished(self, ev: JobEvent) -> None:
        match ev.result:
            case RoundTripped(report=report):
                self.show_report(report)

    def show_report(self, report) -> None:
        """The input, its 4 latent channels, the round trip, and the numbers (with the report's notes)."""
        self.report = report
        self.post_message(ImageEncoded(report.image))
        self.query_one("#input", ImageView).image = report.image
        self.query_one("#input", ImageView).caption = f"input {report.image.width}x{report.image.height}"
        for c, (img, (lo, hi)) in enumerate(zip(report.channels, report.channel_ranges)):
            view = self.query_one(f"#c{c}", ImageView)
            view.image, view.caption = img, f"c{c} {lo:.2f}..{hi:.2f}"
        recon = self.query_one("#recon", ImageView)
        recon.image, recon.caption = report.reconstruction, f"round trip {report.psnr:.1f} dB"
        extra = "".join(f" · {note}" for note in report.notes)
        self.query_one("#source", Label).update(
            f"{self.source}: latents × scaling factor {report.scaling_factor:g}, PSNR {report.psnr:.2f} dB{extra}")
        self.query_one("#sizes", Label).update(report.sizes_text())
        self.work_done()

    def job_failed(self, ev: JobEvent) -> None:
        self.report = None
        for view in self.query(ImageView):  # no earlier image left on screen as if it were this one's
            view.image = None
            view.caption = "—"
        self.query_one("#sizes", Label).update("")
        self.query_one("#source", Label).update(f"{self.source}: failed · fix and press enter")
        super().job_failed(ev)

    def autorun(self) -> None:
        """Headless: the given path, else a fresh image generated from the prompt, round-tripped."""
        if self.query_one("#path", Input).value.strip():
            self.action_run()
            return
        settings = self.ctx.settings
        prompt = self.ctx.prompts[0]

        def generate_one(job):
            from ...core.sampler import generate
            from ..worker import require_model

            model = require_model(job)
            asked = SampleSettings(prompt=prompt, steps=settings.steps, seed=settings.seed)
            return generate(model, asked, cancel=job.cancel).images[0]

        self._start(generate_one, f"an image generated from {prompt!r}")
