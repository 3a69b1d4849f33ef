"""Files every layer writes: atomic replacement (temporary file, fsync, rename) and JSON lines.

A write goes to a temporary file in the same directory and is renamed over the final name, so a kill at any
moment leaves readers the old file or the whole new one. ``read_jsonl`` skips a torn last line (a kill in the
middle of an append); ``truncate_jsonl`` drops the records past a step, so a resumed run does not log steps 5, 6
twice. The bottom layer: it imports nothing of bigbigan.
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
    """The records of a JSONL file; a torn (unparsable) last line, left by a kill mid-append, is skipped."""
    p = Path(path)
    if not p.is_file():
        return []
    lines = [line for line in p.read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise
    return out


def truncate_jsonl(path: str | Path, step: int) -> int:
    """Rewrite ``path`` without the records past ``step`` (and without a torn last line); returns how many
    lines were dropped. Called on resume, so the log restarts exactly where the checkpoint does."""
    p = Path(path)
    if not p.is_file():
        return 0
    raw = [line for line in p.read_text().splitlines() if line.strip()]
    keep = [r for r in read_jsonl(p) if int(r.get("step", 0)) <= step]
    if len(keep) == len(raw):
        return 0
    atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in keep))
    return len(raw) - len(keep)
