"""The run directory: one writer at a time, and an ``--out`` that can be written (JSON-lines logs that never
run ahead of the checkpoint: ``files.truncate_jsonl``).

- ``lock(run_dir)`` takes an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock``. The kernel drops the lock when
  the process dies (even by SIGKILL), so a stale lock cannot outlive its holder; a second writer gets one line
  naming the holder's pid.
- ``prepare(run_dir, data_dir)`` refuses an ``--out`` that is a file, not writable, or inside the data.

Lives below both ``train/`` and ``evaluation/`` (STYLE.md: helpers both need).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RunDirError(RuntimeError):
    """The run directory cannot be used (in use, not writable, inside the data); one line for the user."""


def prepare(run_dir: str | Path, data_dir: str | Path | None = None) -> Path:
    """Create ``run_dir`` (and check it is a writable directory outside ``data_dir``) before any work."""
    run = Path(run_dir)
    if data_dir is not None:
        data, out = Path(data_dir).expanduser().resolve(), run.expanduser().resolve()
        if out == data or data in out.parents:
            raise RunDirError(
                f"--out {run} is inside --data-dir {data_dir}: the run's own pictures would become training "
                "data; put the run directory elsewhere"
            )
    if run.exists() and not run.is_dir():
        raise RunDirError(f"--out {run} is a file, not a directory")
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {run}: {exc.strerror}") from None
    if not os.access(run, os.W_OK | os.X_OK):
        raise RunDirError(f"run directory {run} is not writable")
    return run


@contextlib.contextmanager
def lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` for the ``with`` block; RunDirError if another process holds it."""
    path = Path(run_dir) / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirError(f"cannot lock run directory {run_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(
                f"run directory {run_dir} is in use by another bigbigan process (pid {holder}); wait for it to "
                "finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a waiting process)
