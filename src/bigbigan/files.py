"""Files every layer writes: atomic replacement (temporary file, fsync, rename) and JSON lines.

A write goes to a temporary file in the same directory and is renamed over the final name, so a kill at any
moment leaves readers the old file or the whole new one. The bottom layer: it imports nothing of bigbigan.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (readers see the old file or
    the whole new one), on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to ``path`` via a temporary file + fsync + rename."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` via a temporary file + rename: readers see the old file or the whole new one."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON record as a line (stats.jsonl, metrics.jsonl)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    """Every record of a JSON-lines file; [] when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
