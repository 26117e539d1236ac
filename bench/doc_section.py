"""Each benchmark owns one marked section of docs/benchmarks.md and rewrites only that, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(block: str, start: str, end: str, doc: Path = DOC) -> None:
    """Replace the text from ``start`` to ``end`` with ``block`` (which holds both markers), or append it."""
    body = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if start in body and end in body:
        head, rest = body.split(start, 1)
        body = head + block + rest.split(end, 1)[1]
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".benchmarks-", suffix=".md", dir=doc.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(body)
    os.replace(tmp, doc)
