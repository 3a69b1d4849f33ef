"""Are two training runs bitwise identical? Compares every tensor of their latest checkpoints exactly.

    # old code (a git ref) and the working tree, same seed, a few iterations each:
    git archive main src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src python -m bigbigan train --scale small32 --data digits --steps 3 --out /tmp/a --no-progress --set data.train_val_size=100
    PYTHONPATH=src python -m bigbigan train --scale small32 --data digits --steps 3 --out /tmp/b --no-progress --set data.train_val_size=100
    python benchmarks/same_weights.py /tmp/a /tmp/b

Exit status 0 when every tensor (weights, EMA, optimiser state, SN vectors, RNG states) is equal bit for bit
(NaNs compare equal to NaNs), 1 otherwise, listing the tensors that differ and by how much.
"""

from __future__ import annotations

import argparse
import sys

import torch

from bigbigan.checkpoint import load_latest


def tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested dict / list, keyed by its path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(tensors(v, f"{prefix}[{i}]"))
    return out


def compare(a: dict, b: dict) -> list[str]:
    """Descriptions of the differences between two checkpoints' tensors (empty: identical)."""
    ta, tb = tensors(a), tensors(b)
    diffs = [f"only in one: {k}" for k in sorted(ta.keys() ^ tb.keys())]
    for k in sorted(ta.keys() & tb.keys()):
        x, y = ta[k], tb[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            diffs.append(f"{k}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}")
        elif not torch.equal(x, y) and not (x.is_floating_point() and torch.equal(x.isnan(), y.isnan())
                                            and torch.equal(x.nan_to_num(), y.nan_to_num())):
            d = (x.double() - y.double()).abs().max().item() if x.is_floating_point() else float("nan")
            diffs.append(f"{k}: max |diff| {d:.3g}")
    return diffs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a")
    p.add_argument("run_b")
    args = p.parse_args(argv)
    a, b = load_latest(args.run_a), load_latest(args.run_b)
    if a is None or b is None:
        print(f"same_weights: error: no checkpoint in {args.run_a if a is None else args.run_b}", file=sys.stderr)
        return 2
    if a["step"] != b["step"]:
        print(f"different steps: {a['step']} vs {b['step']}")
        return 1
    diffs = compare(a, b)
    n = len(tensors(a))
    if diffs:
        print(f"{len(diffs)} of {n} tensors differ at step {a['step']}:")
        print("\n".join("  " + d for d in diffs))
        return 1
    print(f"identical: all {n} tensors at step {a['step']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
