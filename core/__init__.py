"""sd-explorer core: everything the chapter does with Stable Diffusion, without a UI.

Importing this package is cheap: it pulls in no torch, diffusers, textual or rich. Import the
submodules you need (``core.tokens``, ``core.models``, ``core.sampler``, ``core.vae``,
``core.outputs``, ``core.fashion``).
"""

__version__ = "0.1.0"
