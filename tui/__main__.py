"""``python -m tui``: the same as the ``sd-explorer`` console script."""

import sys

from tui.entry import main

sys.exit(main())
