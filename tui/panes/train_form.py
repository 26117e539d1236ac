"""The training pane's form: what to train on, how long, which UNet, and the samples' grey guidance.

Two rows of labelled fields and a line saying why the model field holds what it holds: on a GPU the
chapter's UNet is the default, on a CPU the CPU recipe (``core.fashion.recipes.CPU``: the small UNet, batch 64,
lr 2e-3, EMA 0.995, 10 epochs; garments within minutes, where the chapter's UNet takes hours). ``config()``
turns the fields into a ``core.fashion.TrainConfig``; ``fill_recipe(recipe)`` puts in a recipe (ctrl+t: the
shipped model's); ``remember_data()`` keeps a data source that worked in the settings file.
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import replace

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from ..config import MAX_FIELD_CHARS, remember
from ...core.errors import UserError
from ...core.inputs import parse_int
from ..app_context import app_context
from .train_views import parse_grey
from ..widgets.path_suggester import PathSuggester
from ...core.fashion import recipes
from ...core.fashion.recipes import Recipe

#: the model field's choices (``core.fashion.recipes.MODELS``)
ARCHS = [("small UNet 1M (CPU)", "small"), ("tiny UNet 42k", "tiny"), ("chapter UNet 15.9M", "chapter")]


class TrainingForm(Vertical):
    """The fields of a training run (data, checkpoint, epochs, batch, model, grey guidance) and why-line."""

    DEFAULT_CSS = """
    TrainingForm { height: auto; }
    TrainingForm .form { height: 1; }
    TrainingForm .form Input, TrainingForm .form Select { width: 1fr; }
    TrainingForm .field-label { width: auto; padding: 0 1; color: $text-muted; }
    TrainingForm #data, TrainingForm #ckpt { width: 1fr; }
    TrainingForm #epochs, TrainingForm #batch { width: 7; }
    TrainingForm #arch { width: 1fr; min-width: 20; }
    TrainingForm #grey { width: 9; }
    TrainingForm #why { height: 1; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, data: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_source = data
        #: the last recipe filled in: its learning rate and weight EMA have no field of their own (None: AdamW's
        #: default learning rate, no EMA)
        self.recipe: Recipe | None = None
        self.device_type = "cpu"  #: where a run would train (the default model follows it)

    def compose(self) -> ComposeResult:
        def label(text: str, for_id: str) -> Label:
            return Label(text, classes="field-label", id=f"{for_id}-label")

        with Horizontal(classes="form"):
            yield label("data", "data")
            yield Input(self.data_source, id="data", compact=True, suggester=PathSuggester({".parquet"}),
                        placeholder="IDX folder or .parquet",
                        tooltip="A folder of Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz] and labels) or a "
                                ".parquet with image and label columns; empty: the Hub's fashion_mnist (cached)", max_length=MAX_FIELD_CHARS)
            yield label("checkpoint", "ckpt")
            yield Input("", id="ckpt", compact=True, placeholder="a run's .safetensors (ctrl+o)",
                        tooltip="A checkpoint a run wrote (ckpt-*.safetensors): ctrl+o loads it (ctrl+g then samples it); a stopped or finished run fills it in", max_length=MAX_FIELD_CHARS)
        with Horizontal(classes="form"):
            yield label("epochs", "epochs")
            yield Input("25", id="epochs", type="integer", compact=True, max_length=MAX_FIELD_CHARS)
            yield label("batch", "batch")
            yield Input("256", id="batch", type="integer", compact=True, max_length=MAX_FIELD_CHARS)
            yield label("model", "arch")
            yield Select(ARCHS, value="chapter", allow_blank=False, id="arch", compact=True)
            yield label("grey L,S", "grey")
            yield Input("", id="grey", placeholder="off", compact=True,
                        tooltip="Samples: loss guidance towards a grey LEVEL (0-1) at SCALE (exercise 9); empty = off", max_length=MAX_FIELD_CHARS)
        yield Label("", id="why")

    def on_mount(self) -> None:
        self._pick_default_arch()

    # -- the fields ----------------------------------------------------------------------------
    @property
    def data(self) -> str:
        """The data field: a folder of IDX files or a .parquet file ("": the Hub's fashion_mnist)."""
        return self.query_one("#data", Input).value.strip()

    @property
    def checkpoint(self) -> str:
        """The checkpoint field (what ctrl+o loads; a stopped or finished run fills it in)."""
        return self.query_one("#ckpt", Input).value.strip()

    @checkpoint.setter
    def checkpoint(self, path: str) -> None:
        self.query_one("#ckpt", Input).value = path

    @property
    def arch(self) -> str:
        return self.query_one("#arch", Select).value

    def grey(self) -> tuple[float, float] | None:
        """The samples' grey guidance (level, scale), or None when off; ``UserError`` names the fix."""
        return parse_grey(self.query_one("#grey", Input).value)

    def config(self, output_dir: str):
        """The run the fields describe, checkpoints under ``output_dir``/fashion (validate it before use)."""
        epochs = parse_int(self.query_one("#epochs", Input).value, "epochs", "25")
        batch = parse_int(self.query_one("#batch", Input).value, "batch size", "256")
        from ...core.fashion.train_config import TrainConfig

        out = str(Path(output_dir) / "fashion")
        kept = {"lr": self.recipe.lr, "ema_decay": self.recipe.ema_decay} if self.recipe is not None else {}
        return TrainConfig(epochs=epochs, batch_size=batch, model=recipes.model_config(self.arch), out_dir=out,
                           log_every=10, log_seconds=1.0, data=self.data or None, **kept)

    def fill_recipe(self, recipe: Recipe = recipes.SHIPPED) -> None:
        """Put ``recipe`` in the fields (epochs, batch, model) and keep its learning rate and EMA."""
        self.query_one("#epochs", Input).value = str(recipe.epochs)
        self.query_one("#batch", Input).value = str(recipe.batch_size)
        self.query_one("#arch", Select).value = recipe.model
        self.recipe = recipe

    # -- the default model and why ---------------------------------------------------------------
    def _pick_default_arch(self) -> None:
        """The chapter's recipe on a GPU; on a CPU the CPU recipe, saying what to expect (the chapter's UNet is
        one field away)."""
        from ...core.devices import pick_device

        try:
            device = pick_device(app_context(self).settings.device)
        except UserError:
            device = None
        self.device_type = device.type if device is not None else "cpu"
        if self.device_type != "cuda":
            self.fill_recipe(recipes.CPU)
        self._say_why()

    def _say_why(self) -> None:
        arch = self.arch
        if self.device_type == "cuda":
            text = "" if arch == "chapter" else f"{dict((v, k) for k, v in ARCHS)[arch]}: a quick run; the chapter's is the last model"
        elif arch == "chapter":
            text = "CPU: the chapter's 15.9M UNet takes hours here; a GPU runs it in minutes"
        elif self.recipe is recipes.CPU and arch == recipes.CPU.model:
            text = recipes.CPU.expect
        else:
            text = (f"CPU: a quick run; the CPU recipe ({recipes.CPU.model} UNet, batch {recipes.CPU.batch_size}) "
                    "shows garments within minutes")
        self.query_one("#why", Label).update(text)

    @on(Select.Changed, "#arch")
    def _arch_changed(self) -> None:
        self._say_why()

    # -- remembering the data source -------------------------------------------------------------
    def remember_data(self, source: str | None) -> None:
        """A run started from a new data source: keep it in the settings file for the next start."""
        settings = app_context(self).settings
        if not source or source == settings.data or not settings.config_file:
            return
        try:
            path = remember("data", source, settings.config_file)
        except (OSError, UserError) as exc:
            self.notify(f"Could not remember the data folder: {exc}", severity="warning")
            return
        app_context(self).settings = replace(settings, data=source)
        self.notify(f"data = {source} remembered in {path}", title="Settings", timeout=5)
