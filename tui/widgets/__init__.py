"""Reusable widgets (images in half-block cells)."""
