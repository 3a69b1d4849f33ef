"""Process-level performance settings applied by the CLI, so users need not know them.

glibc's default allocator returns every large activation buffer to the OS with munmap and maps it again on the
next step (~130K page faults and ~14% system time per convolution measured on the development machine).
Turning off mmap for large blocks and the heap trimming keeps those buffers in the heap: the same effect as
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>``, set with mallopt(3) at run time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Apply the allocator settings (Linux/glibc only; set BIGBIGAN_NO_MALLOPT=1 to skip). True if applied."""
    if not sys.platform.startswith("linux") or os.environ.get("BIGBIGAN_NO_MALLOPT"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1
        ok &= libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
        return False
    return bool(ok)


def contention_hint(load: float, cores: int, threads: int) -> str | None:
    """A one-line warning when other processes already keep every core busy and torch would run more than one
    OpenMP thread, else None.

    libgomp's worker threads spin while they wait for each other; when another process holds the core a worker
    needs, every parallel region stalls until the scheduler returns it. On the 2-core development machine under
    a load average of ~7 a small32 iteration took 12.6x as long with 2 threads as with 1 (BENCHMARKS.md).
    """
    if threads <= 1 or load < cores:
        return None
    return (f"bigbigan: warning: load average {load:.1f} on {cores} cores: other processes keep the CPU busy, and "
            f"{threads} OpenMP threads can then run many times slower than 1; consider OMP_NUM_THREADS=1 (or "
            "OMP_WAIT_POLICY=PASSIVE)")


def warn_if_contended() -> None:
    """Print ``contention_hint`` for this machine and process to stderr, if it applies."""
    import torch

    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return
    hint = contention_hint(load, os.cpu_count() or 1, torch.get_num_threads())
    if hint:
        print(hint, file=sys.stderr, flush=True)


def worker_env(threads: int) -> dict[str, str]:
    """This process's environment for a worker process given ``threads`` of the cores (OMP_NUM_THREADS)."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def cpu_bf16_native() -> bool:
    """Whether this CPU has oneDNN bf16 kernels (AVX-512 or AMX); False on AVX2-only CPUs, where bf16 runs
    emulated. Unknown (a build without oneDNN) counts as True: no warning on a guess."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def bf16_hint(what: str, device_type: str, native: bool, fp32_option: str) -> str | None:
    """A one-line warning when ``what`` is asked to run in bf16 on a CPU without bf16 kernels, else None.

    On an AVX2-only CPU (AMD Zen 3, 2 cores) a small32 iteration (x2 encoder) took 22.1 s in bf16 against 2.1 s
    in fp32 (BENCHMARKS.md): bf16 is a speed option only where the CPU has bf16 instructions."""
    if device_type != "cpu" or native:
        return None
    return (f"bigbigan: warning: {what} in bf16 on a CPU without bf16 instructions (no AVX-512/AMX: oneDNN "
            f"emulates bf16 here, ~10x slower than fp32 on an AVX2 CPU); use {fp32_option}")


def warn_if_slow_bf16(what: str, device_type: str, fp32_option: str) -> None:
    """Print ``bf16_hint`` for this machine to stderr, if it applies."""
    hint = bf16_hint(what, device_type, cpu_bf16_native(), fp32_option)
    if hint:
        print(hint, file=sys.stderr, flush=True)
