"""Derive independent random seeds from tuples of integers such as (seed, epoch, position)."""

import hashlib
import struct


def mix_seed(*values: int) -> int:
    """Hash integers into one non-negative 63-bit seed for ``torch.Generator.manual_seed``.

    Adding seeds (seed + epoch) makes neighbouring runs share streams; hashing the tuple keeps every
    (seed, epoch, ...) stream independent while staying deterministic across processes and machines.
    """
    packed = struct.pack(f"<{len(values)}q", *values)
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little") >> 1
