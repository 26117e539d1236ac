"""``python -m sd_explorer.tui``: the same as the ``sd-explorer`` console script."""

import sys

from .entry import main

sys.exit(main())
