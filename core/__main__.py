"""``python -m core COMMAND …``: the headless commands (no TUI)."""

import sys

from core.cli import main

sys.exit(main())
