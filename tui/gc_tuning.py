"""Keep Python's cycle collector from freezing the UI.

A full (generation 2) collection walks every tracked object with the GIL held. After torch,
diffusers, transformers and Textual have loaded that is ~500,000 objects: 0.2-0.4 s on the 2-core
CPU we measure on, during which no key press or repaint is handled. While a sweep streams per-step
previews, the UI allocates enough to trigger one every second or two (``bench/bench_tui.py``).

Two standard remedies:
- ``quiet`` (when the app mounts): higher thresholds make young collections rarer and full ones
  rarer still, also during the imports and model load at start-up. Reference counting still frees
  almost everything at once; only garbage in reference cycles waits longer;
- ``freeze`` (once the model has loaded): ``gc.freeze()`` moves everything alive then (libraries,
  the model, the widgets) into the permanent generation that collections skip; it lives as long as
  the app anyway. ``thaw`` before a reload lets the old model be collected; ``restore`` at exit.
"""

from __future__ import annotations

import gc

#: gen0 allocations before a young collection; young collections per gen1; gen1 per full one
THRESHOLDS = (700, 10, 1000)
_saved: tuple[int, int, int] | None = None


def quiet() -> None:
    """Raise the thresholds (the imports and model load at start-up then trigger few collections)."""
    global _saved
    if _saved is None:
        _saved = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)


def freeze() -> int:
    """Move what is alive now out of the collector's reach; returns the number of frozen objects."""
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Let the collector see the frozen objects again (before replacing the model)."""
    gc.unfreeze()


def restore() -> None:
    """Undo ``quiet`` and ``freeze``: the collector as it was before the app started."""
    global _saved
    gc.unfreeze()
    if _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None
