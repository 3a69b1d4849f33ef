"""``bigbigan ablate``: train and evaluate variants x seeds and print the paper's Table 1 form.

Runs go seed by seed (every variant's seed 0, then every variant's seed 1, ...), each in ``OUT/VARIANT/seedN``;
a run whose ``eval.json`` exists (written atomically, last) is finished and skipped; one whose ``train.json``
exists (its training reached the budget) is only evaluated again, never trained further, so every row keeps an
equal budget; an interrupted one resumes from its checkpoint. Cls. is the fast linear probe's test top-1 (AvePool), FID uses
``--fid-samples`` images per side against the training split, IS needs ``--inception-weights``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import presets
from .config import option_overrides
from .evaluation.run import check_requirements, evaluate
from .files import atomic_write_text
from .workflows import train


def mean_std(values: list[float]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _fmt(ms: tuple[float, float] | None, scale: float = 1.0) -> str:
    return "n/a" if ms is None else f"{ms[0] * scale:.2f} ± {ms[1] * scale:.2f}"


def summarise(results: dict[str, list[dict]]) -> tuple[str, dict]:
    """Markdown table (Table 1's columns: IS, FID, Cls.) and its JSON form from per-seed eval results."""
    table = {}
    lines = ["| variant | what it changes | seeds | IS (↑) | FID (↓) | Cls. % (↑) |", "|---|---|---|---|---|---|"]
    for variant, runs in results.items():
        row = {
            "seeds": len(runs),
            "is": mean_std([r.get("is") for r in runs]),
            "fid": mean_std([r.get("fid") for r in runs]),
            "cls": mean_std([r.get("linear_avepool_top1") for r in runs]),
        }
        table[variant] = {k: ({"mean": v[0], "std": v[1]} if isinstance(v, tuple) else v) for k, v in row.items()}
        lines.append(f"| {variant} | {presets.VARIANTS[variant][0]} | {row['seeds']} | {_fmt(row['is'])} | "
                     f"{_fmt(row['fid'])} | {_fmt(row['cls'], 100)} |")
    return "\n".join(lines), table


def ablate_cli(args) -> int:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:  # fail fast on a typo, before hours of training
        presets.resolve(args.scale, v, args.set)
    out = Path(args.out)
    metrics = ["linear", "fid"] + (["is"] if args.inception_weights else [])
    check_requirements(metrics, inception_weights=args.inception_weights)  # before hours of training
    results: dict[str, list[dict]] = {v: [] for v in variants}
    # Seed-major: an ablation stopped part-way still has every variant at least once.
    for seed in range(args.seeds):
        for variant in variants:
            run = out / variant / f"seed{seed}"
            done = run / "eval.json"
            if done.is_file():
                print(f"== {variant} seed {seed}: done, skipped")
                results[variant].append(json.loads(done.read_text()))
                continue
            # Under --minutes the step target is a placeholder far away, unless --steps is given too.
            steps = args.steps or (100000000 if args.minutes else None)
            sets = option_overrides(args.set, data=args.data, data_dir=args.data_dir, steps=steps,
                                    minutes=args.minutes or None, seed=seed) + ["train.eval_every=0"]
            trained = run / "train.json"
            if trained.is_file():  # a finished training is never extended by a rerun: only evaluation is redone
                print(f"== {variant} seed {seed}: trained, evaluating again in {run}")
            else:
                print(f"== {variant} seed {seed}: training in {run}")
                summary = train(presets.resolve(args.scale, variant, sets), run, periodic_eval=False)
                if summary["stopped_by"] not in ("steps", "minutes"):  # a signal: the run is not finished
                    return 130 if summary["stopped_by"] == "SIGINT" else 143
                atomic_write_text(trained, json.dumps(summary, indent=2))
            res = evaluate(run, metrics, fid_samples=args.fid_samples, probe_steps=args.probe_steps,
                           features=("avepool",), inception_weights=args.inception_weights, pictures=False)
            atomic_write_text(done, json.dumps(res, indent=2))
            results[variant].append(res)
    md, table = summarise(results)
    print(md)
    atomic_write_text(out / "ablation.md", md + "\n")
    atomic_write_text(out / "ablation.json", json.dumps({"scale": args.scale, "rows": table}, indent=2))
    print(f"tables: {out / 'ablation.md'}, {out / 'ablation.json'}")
    return 0
