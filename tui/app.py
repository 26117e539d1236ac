"""The sd-explorer app: five panes in tabs (``tui/panes/registry.py``) over one model-owning worker thread.

The model loads on the worker at start (the header shows its progress); the prompt pane works
before that, with a tokenizer resolved from files. Headless mode (``--screenshot``) opens one pane,
starts its work, waits for it to finish, saves Textual's SVG screenshot and exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable
import re
import sys

from textual import on
from textual.app import App, ComposeResult, SuspendNotSupported, SystemCommand
from textual.notifications import Notification, Notify
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane
from rich.text import Text

from . import gc_tuning
from .config import Settings
from .help import HelpScreen
from .job_kinds import JobKind
from .job_results import ModelLoaded
from .messages import (EngineStatus, ImageEncoded, ImageSelected, JobFailed, JobFinished, NoisingRowMade, PaneReady,
                          TimestepShown)
from .panes.latents import LatentsPane
from .panes.registry import PANES, pane_spec
from .panes.sweep import SweepPane
from .panes.tokens import TokensPane
from .worker import ModelWorker
from ..core.atomic import write_new
from ..core.crash import report
from ..core.errors import UserError
from .commands import explorer_commands
from .schedule_view import ScheduleScreen
from .widgets import graphics
from .widgets.image_view import ImageView


def short_status(text: str, limit: int = 40) -> str:
    """An engine status for the header: shapes and reasons (``[...]``, ``(...)``) left out, at most
    ``limit`` characters (``capturing CUDA graph for UNet…``); the whole line goes to a notification."""
    short, before = text, None
    while short != before:  # innermost brackets first: "(a (b))" goes whole
        before, short = short, re.sub(r"\s*(\[[^\[\]()]*\]|\([^\[\]()]*\))", "", short)
    short = re.sub(r"\s+", " ", short).strip()
    return short if len(short) <= limit else short[: limit - 1].rstrip() + "…"


class ExplorerApp(App[int]):
    """Explore Stable Diffusion: tokens, guidance, the VAE, and a small diffusion model's training."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "sd-explorer"
    BINDINGS = [
        Binding("f1", "help", "Help", tooltip="Every key binding"),
        *[Binding(p.key, f"show_pane('{p.id}')", p.title, show=False, tooltip=p.tooltip) for p in PANES],
        Binding("f7", "schedule", "Schedule", show=False, tooltip="The noise schedule: how much noise each timestep adds"),
        Binding("ctrl+l", "reload_model", "Reload model", show=False, tooltip="Load the model again on the worker"),
        Binding("f8", "cycle_graphics", "Graphics mode: cells, auto, sixel, kitty", show=False,
                tooltip="Images as half-block cells, or Sixel / Kitty graphics where the terminal has them"),
    ]

    #: (prompt, negative prompt) as the prompt pane last had them: the one copy every pane samples from
    prompts: reactive[tuple[str, str]] = reactive(("", ""))
    #: the timestep the sweep pane shows: the step sampling now, or the step its timeline is scrubbed to
    timestep: reactive[float | None] = reactive(None)
    #: how long a finished engine status stays in the header (and its notification on screen)
    status_seconds: float = 8.0
    #: the image the latents pane last encoded (the exercises' img2img start when no file is given)
    encoded_image = None
    #: the model's tokenizers, ``[(label, tokenizer)]`` (two for SDXL), once the prompt pane resolved them
    tokenizers: list[tuple[str, object]] = []
    #: the chapter's noising row (one Fashion-MNIST image at 8 timesteps), once the training pane made it
    noising_row = None

    def __init__(self, settings: Settings | None = None, *, show_timings: bool = True,
                 size: str = "") -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.show_timings = show_timings
        self._sweep_size = size
        self.model_worker = ModelWorker(self, self.settings)
        self.model = None  #: the LoadedModel once the worker has it
        self.refiner = None  #: the SDXL refiner loaded beside it, if any
        self._status_timer = None
        self.screenshot_saved: str | None = None
        self.screenshot_error: str | None = None  #: why the screenshot could not be written (exit 2)
        self.notices: list[Notification] = []  #: every notification shown, oldest first (the app's message log)
        self.graphics_mode = self.settings.graphics  #: the image renderer asked for (f8 switches it)

    def compose(self) -> ComposeResult:
        s = self.settings
        yield Header()
        with TabbedContent(initial=s.pane, id="panes"):
            for spec in PANES:
                with TabPane(spec.tab_title, id=spec.id):
                    yield spec.make(s, self._sweep_size)
        yield Footer()

    def on_mount(self) -> None:
        gc_tuning.quiet()
        for field in self.query(Input):  # tab into a field and type: it appends, as the prompt does, instead of
            field.select_on_focus = False  # replacing the whole value (a key meant for a cell, x, erased it)
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(f"Unknown theme {self.settings.theme!r}; using {self.theme}.", severity="warning")
        if self.prompts == ("", ""):  # the prompt pane's first PromptChanged may have come already
            self.prompts = (self.settings.prompt, "")
        self.action_reload_model()
        self.action_show_pane(self.settings.pane)  # the prompt has focus on the default pane
        if self.settings.screenshot and self.settings.pane != "tokens":
            self.pane(self.settings.pane).autorun()

    def _fatal_error(self) -> None:
        """Textual's handler of an exception nobody caught: the last-resort guard (``core.crash``) instead of
        a traceback on the terminal: it goes to the log file, and one line is printed as the app exits (code 1)."""
        exc = sys.exc_info()[1] or self._exception
        line = report(exc, self.settings.log_path(), "app") if exc is not None else "internal error"
        self.bell()
        self._exit_renderables.append(Text(f"sd-explorer: {line}"))
        self._close_messages_no_wait()

    def on_unmount(self) -> None:
        self.model_worker.shutdown()
        gc_tuning.restore()  # tests run many apps in one process

    # -- panes -------------------------------------------------------------------------------
    def pane(self, name: str):
        """The pane widget called ``name`` (an id of ``tui.panes.registry.PANES``: tokens, sweep, ...)."""
        return self.query_one(pane_spec(name).cls)

    def action_show_pane(self, name: str) -> None:
        self.query_one("#panes", TabbedContent).active = name
        self.set_focus(self.pane(name).query_one(pane_spec(name).focus))

    def run_pane_action(self, pane: str, action: str) -> None:
        """Switch to ``pane`` and run its ``action`` (for the command palette)."""
        self.action_show_pane(pane)
        if action:
            getattr(self.pane(pane), f"action_{action}")()

    def action_schedule(self) -> None:
        """The noise schedule view (``tui/schedule_view.py``), over the current pane."""
        self.push_screen(ScheduleScreen())

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen())

    async def action_cycle_graphics(self) -> None:
        """The next graphics mode (cells -> auto -> sixel -> kitty), applied to every image at once."""
        await self.use_graphics(graphics.next_mode(self.graphics_mode))

    async def use_graphics(self, mode: str) -> None:
        """Draw every image with ``mode``'s renderer (``tui.widgets.graphics``) and say, in one line, which one
        is in use. A first Sixel/Kitty mode asks the terminal, which Textual allows only while suspended."""
        widget = None
        if graphics.needs_query(mode):
            try:
                with self.suspend():
                    widget = graphics.choose_image_widget(mode)
            except SuspendNotSupported:
                widget = None
        else:
            widget = graphics.choose_image_widget(mode)
        self.graphics_mode = mode
        ImageView.sharp_widget = widget
        for screen in self.screen_stack:
            for view in screen.query(ImageView):
                await view.switch_renderer()
        self.notify(graphics.describe(mode, widget), title="Graphics (f8 switches)", timeout=5)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own "Keys" panel would list the keys a second time beside "Help: keys" (f1)
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")
        yield from explorer_commands(self)

    # -- the model ---------------------------------------------------------------------------
    def action_reload_model(self) -> None:
        if self.model_worker.busy(JobKind.LOAD):
            return
        self.model = self.refiner = None
        gc_tuning.thaw()  # the old model's objects may be collected again
        self.sub_title = f"loading {self.settings.model}…"
        self.model_worker.submit_load(target=self)

    @on(JobFinished)
    def _model_loaded(self, message: JobFinished) -> None:
        match message.event.result:
            case ModelLoaded(model=model, refiner=refiner):
                self.model, self.refiner = model, refiner
                self.sub_title = self.model_title()
                gc_tuning.freeze()  # no 0.3 s full collections while sampling (tui/gc_tuning.py)

    @on(JobFailed)
    def _model_failed(self, message: JobFailed) -> None:
        if message.job.kind is JobKind.LOAD:
            self.sub_title = f"no model ({self.settings.model} failed to load)"
            self.notify(message.event.message, title="Model", severity="error", timeout=15)

    @on(Notify)
    def _log_notice(self, message: Notify) -> None:
        self.notices.append(message.notification)

    @on(EngineStatus)
    def _engine_status(self, message: EngineStatus) -> None:
        """Graph captures / compiles (seconds to minutes, once per shape) show in the header in a short form
        (``tiny · capturing CUDA graph…``); the whole line goes to a notification (the app's message log)."""
        if self.model is None:
            return  # while loading, the header says so
        name = short_status(self.model.name.rstrip("/").rsplit("/", 1)[-1], 16)  # a Hub id's last part
        self.sub_title = f"{name} · {short_status(message.text)}"
        if self._status_timer is not None:
            self._status_timer.stop()
            self._status_timer = None
        if not message.text.endswith("…"):  # a finished step stays for a while; one in progress until it ends
            self._status_timer = self.set_timer(self.status_seconds, self._plain_sub_title)
            self.notify(message.text, title="Engine", timeout=self.status_seconds)

    def _plain_sub_title(self) -> None:
        self._status_timer = None
        if self.model is not None:
            self.sub_title = self.model_title()

    def model_title(self) -> str:
        """The header: the model, and the refiner its sweeps hand off to."""
        refiner = self.refiner
        extra = f" → {refiner.name} at {self.settings.refiner_at:g}" if refiner is not None else ""
        if self.settings.model == "tiny":  # say what it can draw before anyone types "a flower"
            extra += " · greyscale clothing only"
        return self.model.describe() + extra

    # -- messages between panes --------------------------------------------------------------
    @on(TokensPane.PromptChanged)
    def _prompt_changed(self, message: TokensPane.PromptChanged) -> None:
        self.prompts = (message.prompt, message.negative)

    @on(ImageEncoded)
    def _image_encoded(self, message: ImageEncoded) -> None:
        self.encoded_image = message.image

    @on(TokensPane.TokenizersReady)
    def _tokenizers_ready(self, message: TokensPane.TokenizersReady) -> None:
        self.tokenizers = message.tokenizers

    @on(TimestepShown)
    def _timestep_shown(self, message: TimestepShown) -> None:
        self.timestep = message.timestep

    @on(NoisingRowMade)
    def _noising_row_made(self, message: NoisingRowMade) -> None:
        self.noising_row = message.image

    @on(TokensPane.TokenPicked)
    def _token_picked(self, message: TokensPane.TokenPicked) -> None:
        self.query_one(SweepPane).select_token(message.position, message.piece)
        self.notify(f"The sweep (f3) overlays the heat map of {message.piece!r} (ctrl+o records them).",
                    title="Attention", timeout=4)

    @on(ImageSelected)
    def _image_selected(self, message: ImageSelected) -> None:
        self.query_one(LatentsPane).set_selected(message.image, message.caption)

    @on(PaneReady)
    def _pane_ready(self, message: PaneReady) -> None:
        if self.settings.screenshot and message.pane == self.settings.pane and self.screenshot_saved is None:
            self.call_after_refresh(self._save_and_exit)

    def _save_and_exit(self) -> None:
        path = Path(self.settings.screenshot)  # checked before any work (core.paths, tui.entry)
        svg = self.export_screenshot()
        try:  # atomically, and never over a file that appeared meanwhile
            self.screenshot_saved = str(write_new(path.parent, [path.name], lambda tmp: tmp.write_text(svg, "utf-8")))
        except UserError as exc:
            self.screenshot_error = str(exc)
            self.exit(2)
            return
        self.exit(0)

