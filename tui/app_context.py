"""What the panes and screens may read from the app: one typed view of it, :class:`AppContext`.

The app (``tui.app.ExplorerApp``) holds the state the panes share: the settings, the model worker,
the prompt pair every pane samples from, and what one pane made for another (the latents pane's last
image, the prompt pane's tokenizers, the training pane's noising row, the sweep's shown timestep).
A widget reads it through :func:`app_context` (panes: ``self.ctx``), so a misspelt name is a type
error, not an ``AttributeError`` at run time. Panes still never query each other: what one pane
tells the others goes through a message to the app, which sets these attributes.

This module imports neither the app nor the panes (the app imports the panes), so it is a Protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image
    from textual.dom import DOMNode

    from ..core.models import LoadedModel
    from .config import Settings
    from .worker import ModelWorker


@runtime_checkable
class AppContext(Protocol):
    """The app's shared state, as the panes see it (``ExplorerApp`` has every attribute)."""

    settings: Settings  #: the merged settings (file and flags); the training pane replaces its data source
    model_worker: ModelWorker  #: the one model-owning worker thread
    show_timings: bool  #: status lines give seconds (off in snapshot tests)
    model: LoadedModel | None  #: the loaded model, once the worker has it
    prompts: tuple[str, str]  #: (prompt, negative prompt), as the prompt pane last had them
    timestep: float | None  #: the timestep the sweep pane shows, or None
    encoded_image: Image | None  #: the image the latents pane last encoded
    tokenizers: list[tuple[str, object]]  #: ``[(label, tokenizer)]`` once the prompt pane resolved them
    noising_row: Image | None  #: the training pane's noising row, once made


def app_context(node: DOMNode) -> AppContext:
    """The app ``node`` runs in, typed as the panes see it."""
    return cast("AppContext", node.app)
