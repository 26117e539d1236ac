"""Whether the Hugging Face Hub may be used, and whether it can be reached — answered in seconds.

``offline()`` reads ``HF_HUB_OFFLINE`` (set by ``--offline``). ``reachable()`` opens one TCP
connection to the Hub's host with a short timeout, so a machine without network hears so at once
instead of after the libraries' minutes of retries. Neither imports ``huggingface_hub`` or
``datasets``.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

TRUE = ("1", "true", "yes", "on")
DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_HOWTO = "set HF_HUB_OFFLINE=1 (or --offline) to use only the local cache"


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) is set: nothing may be downloaded."""
    return any(os.environ.get(name, "").lower() in TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def endpoint() -> tuple[str, int]:
    """The Hub's host and port (``HF_ENDPOINT`` if set)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def reachable(timeout: float = 3.0) -> bool:
    """Whether one TCP connection to the Hub opens within ``timeout`` seconds (DNS included)."""
    host, port = endpoint()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
