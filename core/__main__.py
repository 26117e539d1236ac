"""``python -m sd_explorer.core COMMAND …``: the headless commands (no TUI)."""

import sys

from .cli import main

sys.exit(main())
