"""How much of FID's spread over training seeds is the spread of its sample draw: each checkpoint scored again.

    python benchmarks/fid_noise.py ABL/base/seed5 ABL/z-unary-only/seed5 ... --draws 4 \
        --seed-spread benchmarks/results/table1_paper_small32_2000_seeds0-6.json --json benchmarks/results/fid_noise.json

For every run (a directory with eval.json, e.g. an ablation's VARIANT/seedN) the checkpoint its evaluation used is
scored with Inception FID on ``--draws`` independent draws of generated images (sample seeds 0, 1, ...), each as
large as the evaluation's own FID sample, against the same training images and at the same Inception precision
as the evaluation. Draw 0 is the evaluation's own draw, so it must give the evaluation's FID again (printed beside
it). Each draw is cached beside the run (fid_draw_N_SEED.json), so an interrupted run resumes.

The spread over draws of one checkpoint is pure sampling noise; the spread of the evaluated FIDs over training
seeds (from the given runs, or a table1_power ``--json`` via ``--seed-spread``) holds that noise plus the true
differences between trained models. Their variance ratio says which lever shrinks the spread: more samples (if
sampling dominates) or more seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table1_power import cached_score  # the sibling benchmark script


def score_draw(run: Path, seed: int, n: int) -> dict:
    """Inception FID of the evaluated checkpoint on sample seed ``seed`` and ``n`` samples (the evaluation's count),
    its reference images and Inception precision (cached as run/fid_draw_N_SEED.json)."""
    from bigbigan.evaluation.generative import generation_metrics

    return cached_score(run, f"fid_draw_{n}_{seed}", lambda model, ev: {**generation_metrics(
        model.cfg, model.G, n=n, metrics={"fid"}, inception_weights=None, seed=seed,
        inception_precision=ev.get("inception_precision")), "sample_seed": seed})


def decompose(draws: dict[str, dict[str, list[float]]], seed_fids: dict[str, list[float]]) -> dict[str, dict]:
    """Per variant: the mean over its runs of the variance over draws (sampling), the variance of the evaluated
    FIDs over training seeds (total), and their ratio (the share of the seed-to-seed variance that one draw of
    samples explains; above 1 when the estimates are noisy)."""
    out = {}
    for variant, runs in draws.items():
        within = [statistics.variance(v) for v in runs.values() if len(v) > 1]
        seeds = seed_fids.get(variant, [])
        row = {"runs": len(runs), "draws": [len(v) for v in runs.values()],
               "sampling_std": statistics.fmean(within) ** 0.5 if within else None,
               "seed_std": statistics.stdev(seeds) if len(seeds) > 1 else None, "seeds": len(seeds)}
        row["sampling_share"] = (row["sampling_std"] ** 2 / row["seed_std"] ** 2
                                 if row["sampling_std"] is not None and row["seed_std"] else None)
        out[variant] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories with eval.json (an ablation's VARIANT/seedN)")
    p.add_argument("--draws", type=int, default=4, help="sample draws per checkpoint (the first is the evaluation's)")
    p.add_argument("--seed-spread", metavar="JSON",
                   help="a table1_power --json whose per-seed FIDs give the spread over training seeds")
    p.add_argument("--json", help="write every draw and the decomposition here")
    args = p.parse_args(argv)
    if args.draws < 2:
        raise SystemExit(f"fid_noise: --draws must be at least 2 (a spread needs two draws), got {args.draws}")
    runs = [Path(r) for r in args.runs]
    for run in runs:
        if not (run / "eval.json").is_file():
            raise SystemExit(f"fid_noise: {run} has no eval.json (not a finished, evaluated run)")
    draws: dict[str, dict[str, list[float]]] = {}
    evaluated: dict[str, list[float]] = {}
    for run in runs:
        variant, ev = run.parent.name, json.loads((run / "eval.json").read_text())
        if not ev.get("fid_samples"):
            raise SystemExit(f"fid_noise: {run}/eval.json has no FID (fid_samples); evaluate with FID first")
        fids = [score_draw(run, seed, ev["fid_samples"])["fid"] for seed in range(args.draws)]
        draws.setdefault(variant, {})[str(run)] = fids
        evaluated.setdefault(variant, []).append(ev["fid"])
        print(f"{variant} {run.name}: evaluated FID {ev['fid']:.2f}; draws " + ", ".join(f"{f:.2f}" for f in fids)
              + f" (mean {statistics.fmean(fids):.2f} ± {statistics.stdev(fids):.2f})", flush=True)
    seed_fids = evaluated
    if args.seed_spread:
        rows = json.loads(Path(args.seed_spread).read_text())["rows"]
        seed_fids = {v: r["fid"]["per_seed"] for v, r in rows.items() if r.get("fid")}
    table = decompose(draws, seed_fids)
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
    lines = [("| variant | runs x draws | FID std over draws (sampling) | FID std over training seeds (seeds) | "
             "sampling share of the variance |"), "|---|---|---|---|---|"]
    for variant, r in table.items():
        lines.append(f"| {variant} | {r['runs']} x {max(r['draws'])} | {fmt(r['sampling_std'])} | "
                     f"{fmt(r['seed_std'])} ({r['seeds']}) | {fmt(r['sampling_share'])} |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"draws": draws, "evaluated": evaluated, "rows": table,
                                               "seed_spread": args.seed_spread, "torch": torch.__version__,
                                               "command": "python benchmarks/fid_noise.py " + " ".join(
                                                   argv if argv is not None else sys.argv[1:])}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
