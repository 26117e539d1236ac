"""Command palette entries (ctrl+p) for every action: go to a pane, then run the pane's action."""

from __future__ import annotations

from typing import Iterable

from textual.app import SystemCommand

#: (title, help, pane or None, action name on the pane or the app)
COMMANDS: list[tuple[str, str, str | None, str]] = [
    ("Go to: prompt tokens", "f2: prompt, negative prompt and their tokens", "tokens", ""),
    ("Go to: guidance sweep", "f3: one seed at several guidance scales", "sweep", ""),
    ("Go to: VAE latents", "f4: encode an image, see its 4 latent channels, decode", "latents", ""),
    ("Go to: Fashion-MNIST training", "f5: train the class-conditional model", "training", ""),
    ("Tokens: show the other prompt's tokens", "Switch the table between prompt and negative prompt",
     "tokens", "toggle_source"),
    ("Sweep: run", "Sample every scale in one batch (ctrl+r)", "sweep", "run"),
    ("Sweep: new seed and run", "Re-roll the seed, then run (ctrl+n)", "sweep", "reroll"),
    ("Sweep: cancel", "Stop the running sweep (escape)", "sweep", "cancel"),
    ("Sweep: save grid", "Save the grid as a numbered PNG with its settings (ctrl+s)", "sweep", "save"),
    ("Sweep: attention maps on/off", "Record cross-attention heat maps in the next sweep (ctrl+o)", "sweep",
     "toggle_attention"),
    ("Sweep: x0 estimate or x_t", "On a scrubbed cell: the step's x0 estimate or its noisy latent (x)", "sweep",
     "toggle_latents"),
    ("Sweep: heat map of the next token", "Overlay the next prompt token's heat map (ctrl+t)", "sweep",
     "next_token"),
    ("Latents: use the sweep's selected image", "Encode/decode the selected cell (ctrl+g)", "latents",
     "use_selected"),
    ("Latents: encode/decode the path", "Round-trip the image file typed in the path (ctrl+r)", "latents", "run"),
    ("Training: start / resume", "Train on Fashion-MNIST (ctrl+r)", "training", "start"),
    ("Training: pause / resume", "Pause between steps (ctrl+b)", "training", "pause"),
    ("Training: stop", "Stop and write a resumable checkpoint (escape)", "training", "stop"),
    ("Training: sample per class", "A grid of samples per class from the current model (ctrl+g)",
     "training", "sample"),
    ("Training: the shipped model's recipe", "Fill in the recipe of the shipped model, a GPU recipe (ctrl+t)",
     "training", "recipe"),
    ("Training: load checkpoint", "Load the .safetensors at the path (ctrl+o)", "training", "load"),
    ("Training: save weights", "Save the current model's weights (ctrl+s)", "training", "save"),
    ("Go to: exercises", "f6: sweep a negative prompt, img2img strength, colour loss or SDXL size",
     "exercises", ""),
    ("Exercises: run", "Sample the chosen axis (ctrl+r)", "exercises", "run"),
    ("Exercises: cancel", "Stop the running exercise (escape)", "exercises", "cancel"),
    ("Exercises: save grid", "Save the grid as a numbered PNG with its settings (ctrl+s)", "exercises", "save"),
    ("Model: reload", "Load the model again on the worker (ctrl+l)", None, "reload_model"),
    ("Schedule: the noise schedule", "How much noise each timestep adds (f7)", None, "schedule"),
    ("Graphics: next mode", "Images as half-block cells, auto, Sixel or Kitty graphics (f8)", None,
     "cycle_graphics"),
    ("Help: keys", "Every key binding (f1)", None, "help"),
]


def explorer_commands(app) -> Iterable[SystemCommand]:
    """The palette entries, each bound to ``app.run_pane_action``."""
    for title, help_text, pane, action in COMMANDS:
        if pane is None:
            yield SystemCommand(title, help_text, getattr(app, f"action_{action}"))
        else:
            yield SystemCommand(title, help_text, lambda p=pane, a=action: app.run_pane_action(p, a))
