"""sd-explorer's Textual app: five panes (tokens, guidance sweep, VAE latents, Fashion-MNIST training, exercises)
over one model-owning worker thread (``core.jobs``). Start it with ``sd-explorer`` or ``python -m sd_explorer.tui``.
"""
