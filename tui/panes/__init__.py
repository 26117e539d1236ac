"""The five panes of the app, one module each, listed once in ``registry.PANES``."""
