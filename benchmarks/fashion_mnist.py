"""What bigbigan learns on Fashion-MNIST in a CPU budget, against honest baselines, with one evaluation code.

    python benchmarks/fashion_mnist.py --minutes 60
    python benchmarks/fashion_mnist.py --seeds 0,1,2 --steps 4800 --baselines keep   # same length on any machine

1. trains ``small32`` base (with ``DEFAULT_SETS``: bf16, x2-wide encoder) on the Fashion-MNIST training split
   for ``--minutes`` or exactly ``--steps`` iterations, once per seed in ``OUT/seed<N>`` (resumable: rerunning
   continues the same runs), with the periodic fast probe on train_val every 500 iterations (the learning
   curve and the time to accuracy, in minutes of this machine, read from each run's ``metrics.jsonl``);
2. evaluates each seed's EMA encoder and generator on the test split: linear probes (fast, and the lr sweep
   with train_val selection; AvePool and BN+CReLU), the k-NN table, FID/KID against the training set,
   relative L1;
3. evaluates the baselines with the same code: raw pixels, the same encoder at its random initialisation, and
   the same encoder trained with labels (cross-entropy) for ``--supervised-minutes`` (``--baselines keep``
   copies those rows, with their own date and command, from the existing results file instead;
   ``--baselines random-init`` evaluates the random initialisation of this run's encoder, the row a changed
   encoder needs, and copies the other two);
   ``--fid-10k PRECISION`` adds FID/KID of 10K EMA samples against 10K training images (``fid_10k``,
   ``kid_10k``) with that Inception mode. A seed's evaluation already on disk for its last checkpoint, with the
   same settings (``eval.json``, ``eval_fid10k_<precision>.json``), is reused (``--reevaluate``: compute again);
4. writes ``benchmarks/results/fashion_mnist.json``: one object per model; for ``trained`` the figures are the
   mean over seeds, with ``std`` and a ``seeds`` list holding each seed's object; prints a Markdown table.
   ``--compare OTHER.json`` adds ``compare``: each figure's difference from OTHER's trained seeds with Welch's
   t-test (a changed configuration against the headline one).

Several seeds side by side on two cores: one process per seed with ``OMP_NUM_THREADS=1`` and ``--train-only``,
then the same command without it for all seeds at once (their evaluations one after another, on both cores).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from bigbigan.ablate import mean_std, welch
from bigbigan.checkpoint import list_checkpoints
from bigbigan.cli import SIGNAL_EXIT
from bigbigan.data import load_eval_tensors, open_source
from bigbigan.evaluation.features import extract_features
from bigbigan.evaluation.inception import FEATURE_PRECISIONS
from bigbigan.evaluation.report import train_val_curve, training_clock
from bigbigan.evaluation.run import evaluate, representation_metrics
from bigbigan.files import atomic_write_text, read_jsonl
from bigbigan.nets import build_models
from bigbigan.presets import resolve
from bigbigan.runtime import tune_allocator
from bigbigan.workflows import train as run_training

ROOT = Path(__file__).resolve().parent
METRICS = ["linear", "linear-sweep", "knn"]
# The published configuration (BENCHMARKS.md): bf16 autocast (1.7x the fp32 iterations on a 2-core CPU) and the
# x2-wide encoder (ahead at equal iterations in short A/B runs). ``--set`` overrides them.
# --baselines: which of the baseline rows are copied from the existing results file instead of measured.
BASELINES = ("random_init", "pixels", "supervised")
KEPT = {"run": (), "keep": BASELINES, "random-init": tuple(b for b in BASELINES if b != "random_init")}
DEFAULT_SETS = ["train.precision=bf16", "model.encoder.width=2"]


def splits(cfg):
    d = cfg.data
    kw = {"train_val_size": d.train_val_size, "seed": cfg.train.seed}
    return {s: open_source(d.source, d.data_dir, s, **kw) for s in ("train_sub", "train_val", "test")}


def encoder_metrics(E, cfg, srcs, probe_steps) -> dict:
    kw = {"resolution": cfg.model.e_resolution, "channels": cfg.model.channels}
    feats = [extract_features(E.eval(), srcs[s], desc=f"features {s}", **kw) for s in srcs]
    return representation_metrics(*feats, METRICS, probe_steps=probe_steps)


def pixel_metrics(cfg, srcs, probe_steps) -> dict:
    kw = {"resolution": cfg.model.resolution, "channels": cfg.model.channels}
    feats = []
    for s in srcs:
        x, y = load_eval_tensors(srcs[s], **kw)
        feats.append((x.flatten(1), y))
    return representation_metrics(*feats, METRICS, probe_steps=probe_steps, features=("avepool",))


def train_supervised(cfg, srcs, minutes: float, seed: int) -> tuple[torch.nn.Module, int]:
    """The same encoder trained with labels (cross-entropy on a linear head over its AvePool feature)."""
    from bigbigan.data import TrainStream

    torch.manual_seed(seed)
    _, _, E = build_models(cfg)
    head = torch.nn.Linear(E.feature_dim, srcs["train_sub"].num_classes)
    params = list(E.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    stream = TrainStream(srcs["train_sub"], global_batch=128, resolution=cfg.model.e_resolution,
                         e_resolution=cfg.model.e_resolution, augment=cfg.data.augment,
                         channels=cfg.model.channels, seed=seed)
    E.train()
    deadline, steps = time.monotonic() + 60 * minutes, 0
    while time.monotonic() < deadline:
        x, _, y = next(stream)
        loss = torch.nn.functional.cross_entropy(head(E.features(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return E, steps


def pick(res: dict) -> dict:
    keys = {"linear_top1": "linear_avepool_top1", "linear_bn_crelu_top1": "linear_bn_crelu_top1",
            "linear_sweep_top1": "linear_sweep_avepool_top1", "knn_d1_k25_top1": "knn_d1_k25_top1",
            "knn_d1_k5_top1": "knn_d1_k5_top1", "knn_d2_k25_top1": "knn_d2_k25_top1"}
    out = {k: res.get(v) for k, v in keys.items()}
    out.update({k: res.get(k) for k in ("fid", "kid", "rel_l1", "fid_samples")})
    out["all"] = res
    return out


NUMERIC = ["linear_top1", "linear_bn_crelu_top1", "linear_sweep_top1", "knn_d1_k25_top1", "knn_d1_k5_top1",
           "knn_d2_k25_top1", "fid", "kid", "rel_l1", "fid_10k", "kid_10k", "minutes", "iterations"]


def mean_over_seeds(per_seed: list[dict]) -> dict:
    """``trained``'s object: each numeric figure's mean, ``std`` (sample std; 0 for one seed) and the seeds."""
    out: dict = {}
    std: dict = {}
    for k in NUMERIC:
        if all(r.get(k) is not None for r in per_seed):
            out[k], std[k] = mean_std([r[k] for r in per_seed])
    out["fid_samples"] = per_seed[0].get("fid_samples")
    return {**out, "std": std, "seeds": per_seed}


COMPARED = ["linear_top1", "linear_bn_crelu_top1", "knn_d1_k25_top1", "knn_d1_k5_top1", "fid", "fid_10k", "kid_10k",
            "rel_l1"]


def compare_trained(ours: dict, theirs: dict) -> dict:
    """Welch's t-test of each figure over the seeds of two ``trained`` objects (ours minus theirs); figures one
    side lacks are left out."""
    out = {}
    for k in COMPARED:
        a = [r.get(k) for r in ours.get("seeds", [])]
        b = [r.get(k) for r in theirs.get("seeds", [])]
        if a and b and None not in a and None not in b:
            out[k] = {**welch(a, b), "ours": a, "theirs": b}
    return out


# Settings that evaluations written before they were recorded used (evaluate's defaults then).
UNRECORDED = {"probe_steps": 5000}


def reusable(path: Path, settings: dict, keys: list[str]) -> dict | None:
    """The evaluation saved at ``path`` if it is of the run's last checkpoint, made with ``settings`` (key: value
    as recorded in the file, ``UNRECORDED`` where it is not) and holds every one of ``keys``; else None."""
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    ckpts = list_checkpoints(path.parent)
    if (not ckpts or res.get("step") != ckpts[-1][0] or "failed" in res
            or any(res.get(k, UNRECORDED.get(k)) != v for k, v in settings.items()) or any(res.get(k) is None for k in keys)):
        return None
    return res


def evaluated(run: Path, name: str, metrics: list[str], settings: dict, keys: list[str], force: bool,
              **kw) -> dict:
    """``run/name`` if reusable (see ``reusable``) and not ``force``, else a new evaluation written there."""
    res = None if force else reusable(run / name, settings, keys)
    if res is not None:
        print(f"{run / name}: reused (step {res['step']})")
        return res
    res = evaluate(run, metrics, **kw)
    atomic_write_text(run / name, json.dumps(res, indent=2))  # eval.json as `bigbigan eval` writes it: report, shipping
    return res


def training_minutes(run: Path, summary: dict) -> float | None:
    """Minutes of training behind the run's last step, kept in ``run/train.json`` across resumed sessions (a
    rerun of a finished run trains 0 iterations and reads it back; a session killed before writing it is read
    from ``stats.jsonl``); None when unknown."""
    record = run / "train.json"
    prev = json.loads(record.read_text()) if record.is_file() else None
    if summary["iterations"] == 0:
        return prev["seconds"] / 60 if prev and prev["step"] == summary["step"] else None
    if prev and prev["step"] == summary["step"] - summary["iterations"]:
        before = prev["seconds"]
    else:  # no record of the earlier sessions (a kill, not a signal, ended the last one): their stats.jsonl clock
        sessions, _ = training_clock(read_jsonl(run / "stats.jsonl"))
        before = 60 * sessions[-1][1] if sessions else 0.0
    atomic_write_text(record, json.dumps({"step": summary["step"], "seconds": before + summary["seconds"]}))
    return (before + summary["seconds"]) / 60


def train_to_length(cfg, run: Path) -> tuple[dict, float | None]:
    """Train (or continue) the run to its length: its summary and training minutes; exits if a signal stopped it."""
    summary = run_training(cfg, run)
    minutes = training_minutes(run, summary)
    if summary["stopped_by"] not in ("steps", "minutes"):  # a signal: the run is not finished, nothing to publish
        print(f"{run}: training stopped by {summary['stopped_by']} at iteration {summary['step']}; the same "
              "command continues it")
        raise SystemExit(SIGNAL_EXIT.get(summary["stopped_by"], 1))
    return summary, minutes


def train_and_evaluate(cfg, run: Path, args) -> dict:
    summary, minutes = train_to_length(cfg, run)
    res = evaluated(run, "eval.json", METRICS + ["recon", "fid", "kid"],
                    {"fid_samples": args.fid_samples, "probe_steps": args.probe_steps, "inception_precision": "fp32"},
                    ["linear_avepool_top1", "knn_d1_k25_top1", "fid", "kid", "rel_l1"], args.reevaluate,
                    fid_samples=args.fid_samples, probe_steps=args.probe_steps)
    out = {**pick(res), "seed": cfg.train.seed, "minutes": minutes, "iterations": summary["step"],
           "train_val_curve": train_val_curve(run)}
    if args.fid_10k:
        big = evaluated(run, f"eval_fid10k_{args.fid_10k}.json", ["fid", "kid"],
                        {"fid_samples": 10000, "inception_precision": args.fid_10k}, ["fid", "kid"],
                        args.reevaluate, fid_samples=10000, inception_precision=args.fid_10k)
        out.update({"fid_10k": big["fid"], "kid_10k": big["kid"], "kid_10k_std": big.get("kid_std"),
                    "fid_10k_inception": args.fid_10k, "fid_10k_seconds": big["timings_s"].get("generation")})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="BigBiGAN training budget (default 60)")
    p.add_argument("--supervised-minutes", type=float, help="supervised baseline budget (default: --minutes)")
    p.add_argument("--fid-samples", type=int, default=2000, help="images per side for FID/KID (default 2000)")
    p.add_argument("--probe-steps", type=int, default=5000)
    p.add_argument("--out", default=str(ROOT / "runs" / "fashion_mnist"), help="run directory root")
    p.add_argument("--json", default=str(ROOT / "results" / "fashion_mnist.json"))
    p.add_argument("--seeds", default="0", help="comma list of training seeds (default 0); the table shows the mean")
    p.add_argument("--steps", type=int, help="train exactly this many iterations (then --minutes is no limit)")
    p.add_argument("--baselines", choices=list(KEPT), default="run",
                   help="keep: copy the pixels / random_init / supervised rows from --keep-from (default --json); "
                   "random-init: evaluate this encoder at its random initialisation, copy the other two")
    p.add_argument("--set", action="append", default=[], help="config overrides for the BigBiGAN run")
    p.add_argument("--fid-10k", choices=FEATURE_PRECISIONS,
                   help="also FID/KID of 10K EMA samples vs 10K training images, with this Inception mode")
    p.add_argument("--keep-from", help="the results file the kept baseline rows come from (default: --json)")
    p.add_argument("--compare", help="another results file: Welch's t-test of each figure, this table's seeds "
                   "against its trained seeds (written as `compare`)")
    p.add_argument("--train-only", action="store_true",
                   help="train (or continue) the seeds' runs and stop: processes training seeds side by side, "
                   "then one command without it evaluates them one after another (an evaluation wants both cores)")
    p.add_argument("--reevaluate", action="store_true", help="evaluate again even where a current result is saved")
    args = p.parse_args(argv)
    tune_allocator()
    out = Path(args.out)
    seeds = [int(x) for x in args.seeds.split(",")]
    length = [f"train.steps={args.steps}"] if args.steps else [f"train.minutes={args.minutes}", "train.steps=100000000"]
    keep = KEPT[args.baselines]
    source = Path(args.keep_from or args.json)
    kept = json.loads(source.read_text()) if keep and source.is_file() else {}
    if missing := [k for k in keep if k not in kept]:
        p.error(f"--baselines {args.baselines}: {source} lacks the {' / '.join(missing)} row(s) "
                "(use --baselines run, or --keep-from a results file that has them)")
    if args.compare and not Path(args.compare).is_file():  # refused now, not after hours of training
        p.error(f"--compare: no results file {args.compare}")
    meta = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
            "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}", "split": "test",
            "fid_reference": "training split"}
    results: dict = {}
    t0 = time.monotonic()
    per_seed = []
    for seed in seeds:
        cfg = resolve("small32", "base", ["data.source=fashion-mnist", *length, f"train.seed={seed}", *DEFAULT_SETS,
                                          *args.set])
        if args.train_only:
            train_to_length(cfg, out / f"seed{seed}")
            continue
        per_seed.append({**train_and_evaluate(cfg, out / f"seed{seed}", args), "command": meta["command"],
                         "date": meta["date"]})
    if args.train_only:
        print(f"trained seed(s) {args.seeds} under {out}; evaluate with the same command without --train-only")
        return 0
    results["trained"] = mean_over_seeds(per_seed)
    results.update({k: kept[k] for k in keep})
    measured = [name for name in BASELINES if name not in keep]
    srcs = splits(cfg) if measured else None
    if "random_init" not in keep:
        torch.manual_seed(seeds[0])  # the trainer's initialisation: same seed, same weights
        _, _, E0 = build_models(cfg)
        results["random_init"] = {**pick(encoder_metrics(E0, cfg, srcs, args.probe_steps)), "minutes": 0,
                                  "iterations": 0}
    if "pixels" not in keep:
        results["pixels"] = {**pick(pixel_metrics(cfg, srcs, args.probe_steps)), "minutes": 0, "iterations": 0}
    if "supervised" not in keep:
        sup_minutes = args.supervised_minutes if args.supervised_minutes is not None else args.minutes
        E_sup, sup_steps = train_supervised(cfg, srcs, sup_minutes, seeds[0])
        results["supervised"] = {**pick(encoder_metrics(E_sup, cfg, srcs, args.probe_steps)),
                                 "minutes": sup_minutes, "iterations": sup_steps}
    for name in measured:
        results[name].update({k: meta[k] for k in ("command", "date")})
    results["trained"].update({k: meta[k] for k in ("command", "date")})
    if args.compare:
        other = json.loads(Path(args.compare).read_text())
        results["compare"] = {"against": args.compare, "against_command": other["trained"].get("command"),
                              "figures": compare_trained(results["trained"], other["trained"])}
    meta["total_minutes"] = (time.monotonic() - t0) / 60
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"meta": meta, **results}, indent=2))
    # The run's report shows its headline figures beside these (same evaluation code, eval.json keys).
    baselines = {name: results[name]["all"] for name in BASELINES}
    for seed in seeds:
        (out / f"seed{seed}" / "baselines.json").write_text(json.dumps(baselines, indent=2))
    cols = ["linear_top1", "linear_bn_crelu_top1", "linear_sweep_top1", "knn_d1_k25_top1", "knn_d1_k5_top1",
            "fid", "kid", "rel_l1", *(["fid_10k", "kid_10k"] if args.fid_10k else []), "minutes", "iterations"]
    print("| model | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, r in results.items():
        if name == "compare":
            continue
        cells = [("n/a" if r.get(c) is None else f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]))
                 for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for k, w in results.get("compare", {}).get("figures", {}).items():
        print(f"{k}: {w['diff']:+.4f} against {args.compare} (Welch p {w['p'] if w['p'] is None else round(w['p'], 4)})")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
