"""Console entry point ``sd-explorer``: the lead's CLI parses flags and subcommands; with no
subcommand it calls :func:`launch`, which starts the Textual app (imported lazily, so
subcommands never pay for Textual)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any


def launch(args: Any) -> int:
    """Run the TUI with settings from defaults < config file < flags (``args`` from core.cli)."""
    from ..core.errors import UserError
    from .config import load_settings

    try:
        settings = load_settings(args)
        if settings.screenshot:  # the one output-path check, before any work
            from ..core.paths import check_output_file

            settings = dataclasses.replace(settings, screenshot=str(check_output_file(settings.screenshot, "--screenshot")))
    except UserError as exc:
        print(f"sd-explorer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    from .app import ExplorerApp
    from .widgets.graphics import choose_image_widget
    from .widgets.image_view import ImageView

    if not settings.screenshot:  # the terminal can only be asked before Textual starts
        ImageView.sharp_widget = choose_image_widget(settings.graphics)
    app = ExplorerApp(settings, show_timings=not settings.screenshot)
    if settings.screenshot:
        size = getattr(args, "size", None) or (100, 32)
        result = app.run(headless=True, size=size)
        # let a model load still in flight finish before the interpreter tears torch down
        app.model_worker.runner.wait_idle(120)
        if app.screenshot_error:
            print(f"sd-explorer: error: {app.screenshot_error}", file=sys.stderr)
            return 2
        if app.screenshot_saved is None:
            print(f"sd-explorer: no screenshot was saved ({settings.pane} did not finish).", file=sys.stderr)
            return 1
        print(app.screenshot_saved)
        return int(result or 0)
    result = app.run()
    app.model_worker.runner.wait_idle(30)  # cancelled on exit; a model load cannot be interrupted
    return app.return_code or int(result or 0)  # 1 after a crash (tui.app's last-resort guard), not 0


def add_flags(parser) -> None:
    """The flags only the explorer reads (the CLI's own live in ``core.cli``)."""
    from ..core.cli import add_refiner_flags
    from .config import PANES

    parser.add_argument("--config", default=None, help="settings file (default: XDG config dir)")
    parser.add_argument("--screenshot", default=None, metavar="SVG", help="render a pane headless and save an SVG")
    parser.add_argument("--pane", default=None, choices=list(PANES))
    parser.add_argument("--prompt", default=None, help="start with this prompt")
    parser.add_argument("--data", default=None, help="Fashion-MNIST source for the training pane")
    add_refiner_flags(parser)  # the sweeps and exercises hand off to it


def main(argv: list[str] | None = None) -> int:
    """``sd-explorer [options] [subcommand …]``."""
    try:  # ctrl+c while the first modules load (core.cli installs the quiet handler once it runs)
        from ..core.cli import main as cli_main

        return cli_main(argv, tui_launcher=launch, tui_flags=add_flags)
    except KeyboardInterrupt:
        print("sd-explorer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
