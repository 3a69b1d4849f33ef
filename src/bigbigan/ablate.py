"""``bigbigan ablate``: train and evaluate variants x seeds and print the paper's Table 1 form.

Runs go seed by seed (every variant's seed 0, then every variant's seed 1, ...), each in ``OUT/VARIANT/seedN``;
a run whose ``eval.json`` exists (written atomically, last) is finished and skipped; one whose ``train.json``
exists (its training reached the budget) is only evaluated again, never trained further, so every row keeps an
equal budget; an interrupted one resumes from its checkpoint. FID uses ``--fid-samples`` images per side against
the training split, IS needs ``--inception-weights``. Two protocols (``PROTOCOLS``), named in the tables they
produce:

- ``fast`` (default): no evaluation during training, the last checkpoint, Cls. = the fast linear probe (cached
  unaugmented AvePool features, train_val picks the stopping step) scored on the test split.
- ``paper`` (App. A, Table 1): a train_val probe every ``--eval-every`` steps during training, the checkpoint
  with the best train_val accuracy (early stopping), the classifier trained on freshly augmented inputs
  ("linear-paper"), and Cls. = its train_val accuracy, as Table 1 reports, with the test split beside it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import presets
from .config import ConfigError, option_overrides
from .evaluation.run import check_requirements, evaluate
from .files import atomic_write_text
from .workflows import train

PROTOCOLS = {
    "fast": ("last checkpoint; fast probe on cached unaugmented AvePool features; Cls. = test top-1 "
             "(stopping step chosen on train_val)"),
    "paper": ("Table 1's protocol (App. A): periodic train_val probe during training, best checkpoint by "
              "train_val accuracy (early stopping); probe trained on augmented inputs; Cls. = train_val top-1, "
              "test top-1 beside it"),
}
# eval.json keys of each protocol's columns: (Cls., test column or None)
_CLS_KEYS = {"fast": ("linear_avepool_top1", None),
             "paper": ("linear_paper_avepool_train_val_top1", "linear_paper_avepool_top1")}


def mean_std(values: list[float]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _fmt(ms: tuple[float, float] | None, scale: float = 1.0) -> str:
    return "n/a" if ms is None else f"{ms[0] * scale:.2f} ± {ms[1] * scale:.2f}"


def summarise(results: dict[str, list[dict]], protocol: str = "fast") -> tuple[str, dict]:
    """Markdown table (Table 1's columns: IS, FID, Cls.; plus test top-1 under ``paper``) headed by the protocol
    line, and its rows' JSON form, from per-seed eval results."""
    cls_key, test_key = _CLS_KEYS[protocol]
    table = {}
    header = "| variant | what it changes | seeds | IS (↑) | FID (↓) | Cls. % (↑) |"
    if test_key:
        header = header.replace("Cls. % (↑) |", "Cls. % (train_val, ↑) | test top-1 % (↑) |")
    lines = [f"Protocol: {protocol} ({PROTOCOLS[protocol]}).", "", header,
             "|---" * header.count(" | ") + "|---|"]
    for variant, runs in results.items():
        row = {
            "seeds": len(runs),
            "is": mean_std([r.get("is") for r in runs]),
            "fid": mean_std([r.get("fid") for r in runs]),
            "cls": mean_std([r.get(cls_key) for r in runs]),
        }
        if test_key:
            row["test"] = mean_std([r.get(test_key) for r in runs])
        table[variant] = {k: ({"mean": v[0], "std": v[1]} if isinstance(v, tuple) else v) for k, v in row.items()}
        cells = [variant, presets.VARIANTS[variant][0], str(row["seeds"]), _fmt(row["is"]), _fmt(row["fid"]),
                 _fmt(row["cls"], 100)] + ([_fmt(row["test"], 100)] if test_key else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), table


def _claim_protocol(out: Path, protocol: str) -> None:
    """Refuse to mix protocols in one ablation directory (finished runs are reused as they are)."""
    marker = out / "protocol.txt"
    if marker.is_file():
        previous = marker.read_text().strip()
    else:  # ablations written before --protocol existed ran the fast one
        previous = "fast" if any(out.glob("*/seed*/eval.json")) else None
    if previous not in (None, protocol):
        raise ConfigError(f"{out} holds runs of --protocol {previous}; use that protocol or another --out")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(protocol + "\n")


def _eval_every(args, scale_default: int) -> int:
    """Steps between train_val evaluations under ``paper``: --eval-every, else a tenth of --steps, else the
    scale's ``train.eval_every``."""
    every = args.eval_every or (max(1, args.steps // 10) if args.steps else scale_default)
    if every <= 0:
        raise ConfigError(f"--protocol paper evaluates on train_val during training: give --eval-every "
                          f"(scale {args.scale} sets no train.eval_every)")
    return every


def ablate_cli(args) -> int:
    if args.protocol not in PROTOCOLS:  # fail fast, before hours of training
        raise ConfigError(f"unknown --protocol {args.protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    paper = args.protocol == "paper"
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:  # fail fast on a typo, before hours of training
        presets.resolve(args.scale, v, args.set)
    eval_every = _eval_every(args, presets.resolve(args.scale, variants[0], args.set).train.eval_every) if paper else 0
    out = Path(args.out)
    metrics = (["linear-paper"] if paper else ["linear"]) + ["fid"] + (["is"] if args.inception_weights else [])
    check_requirements(metrics, inception_weights=args.inception_weights)  # before hours of training
    _claim_protocol(out, args.protocol)  # after every check: a refused ablation leaves nothing behind
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
                                    minutes=args.minutes or None, seed=seed) + [f"train.eval_every={eval_every}"]
            trained = run / "train.json"
            if trained.is_file():  # a finished training is never extended by a rerun: only evaluation is redone
                print(f"== {variant} seed {seed}: trained, evaluating again in {run}")
            else:
                print(f"== {variant} seed {seed}: training in {run}")
                summary = train(presets.resolve(args.scale, variant, sets), run, periodic_eval=paper)
                if summary["stopped_by"] not in ("steps", "minutes"):  # a signal: the run is not finished
                    return 130 if summary["stopped_by"] == "SIGINT" else 143
                atomic_write_text(trained, json.dumps(summary, indent=2))
            # paper: the checkpoint with the best periodic train_val accuracy (early stopping, App. A)
            res = evaluate(run, metrics, which="best" if paper else "latest", fid_samples=args.fid_samples,
                           probe_steps=args.probe_steps, features=("avepool",),
                           inception_weights=args.inception_weights, pictures=False)
            res["protocol"] = args.protocol
            atomic_write_text(done, json.dumps(res, indent=2))
            results[variant].append(res)
    md, table = summarise(results, args.protocol)
    print(md)
    atomic_write_text(out / "ablation.md", md + "\n")
    atomic_write_text(out / "ablation.json", json.dumps(
        {"scale": args.scale, "protocol": args.protocol, "protocol_description": PROTOCOLS[args.protocol],
         "eval_every": eval_every or None, "rows": table}, indent=2))
    print(f"tables: {out / 'ablation.md'}, {out / 'ablation.json'}")
    return 0
