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

``--jobs N`` trains and evaluates N runs at a time, each in its own process (``bigbigan ablate ... --cell
VARIANT:SEED``, its output in ``OUT/logs/VARIANT-seedN.log``) with the machine's threads split between them: on a
small CPU, separate single-thread runs get more iterations per second in all than one run using every core
(BENCHMARKS.md). The tables are written once every run is finished, exactly as with one job.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from scipy import stats as sps

from . import presets
from .config import ConfigError, option_overrides
from .evaluation.run import check_requirements, evaluate
from .files import atomic_write_text
from .runtime import worker_env
from .train.signals import stop_signals
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


# The paper's Table 1 figures the directions below compare: Cls. (%) and FID of each row, by our variant name.
PAPER_TABLE1 = {
    "base": {"cls": 48.10, "fid": 31.19},
    "z-unary-only": {"cls": 47.78, "fid": 39.48},
    "no-unaries": {"cls": 46.71, "fid": 42.92},
    "deterministic-e": {"cls": 46.97},
    "high-res-e-256": {"cls": 50.80, "fid": 27.86},
    "resnet-e-lr": {"cls": 53.70},
}

# Table 1's directions: (claim, variant A, variant B, metric, the paper's sign of A - B); the paper's A and B are
# PAPER_TABLE1's. metric "cls" is the protocol's Cls. column (see _CLS_KEYS), "fid" the FID column. The two marked
# "(text)" are stated in the paper's discussion of Table 1 (Sec. 4.1) rather than read off its headline comparisons.
DIRECTIONS = [
    ("x unary improves FID", "base", "z-unary-only", "fid", -1),
    ("x unary improves Cls. (text)", "base", "z-unary-only", "cls", +1),
    ("z unary improves FID without the x unary (text)", "z-unary-only", "no-unaries", "fid", -1),
    ("no unaries (BiGAN's objective) hurt FID", "no-unaries", "base", "fid", +1),
    ("BigBiGAN's objective beats BiGAN's on Cls.", "base", "no-unaries", "cls", +1),
    ("stochastic E improves Cls.", "base", "deterministic-e", "cls", +1),
    ("high-res E improves Cls.", "high-res-e-256", "base", "cls", +1),
    ("high-res E improves FID", "high-res-e-256", "base", "fid", -1),
    ("↑E LR improves Cls.", "resnet-e-lr", "high-res-e-256", "cls", +1),
]
ALPHA = 0.05


def welch(a: list[float], b: list[float]) -> dict:
    """Welch's t-test of mean(a) - mean(b): the difference, its 95% interval, t, Welch-Satterthwaite df and the
    two-sided p-value (None where a side has fewer than 2 values or both have no spread)."""
    diff = statistics.fmean(a) - statistics.fmean(b)
    out = {"diff": diff, "n": [len(a), len(b)], "t": None, "df": None, "p": None, "ci95": None}
    if len(a) < 2 or len(b) < 2:
        return out
    if statistics.variance(a) == statistics.variance(b) == 0:
        return out
    with warnings.catch_warnings():  # scipy warns of "precision loss" when one side has no spread; t is exact
        warnings.simplefilter("ignore", RuntimeWarning)
        r = sps.ttest_ind(a, b, equal_var=False)
    ci = r.confidence_interval(1 - ALPHA)
    return {**out, "t": float(r.statistic), "df": float(r.df), "p": float(r.pvalue),
            "ci95": [float(ci.low), float(ci.high)]}


POWER = 0.8


def seeds_for_power(diff: float, sd: float, power: float = POWER, alpha: float = ALPHA,
                    most: int = 100_000) -> int | None:
    """Seeds per row that a two-sided two-sample t-test (equal rows, common spread ``sd``) needs to find a true
    difference ``diff`` at level ``alpha`` with probability ``power``, from the noncentral t distribution.
    None where there is nothing to find (no difference or no spread) or it takes more than ``most`` seeds."""
    if diff == 0 or not sd > 0:
        return None
    d = abs(diff) / sd
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    n = max(2, int(2 * (z / d) ** 2))  # the normal approximation: never more than the t-test needs
    while n <= most:
        df = 2 * n - 2
        crit = sps.t.ppf(1 - alpha / 2, df)
        nc = d * (n / 2) ** 0.5
        if sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc) >= power:
            return n
        n += 1
    return None


def verdict(test: dict, sign: int) -> str:
    """'reproduced' / 'reversed' when p < ALPHA in the paper's / the opposite direction, else 'not resolved'."""
    if test["p"] is None:
        return "not tested (needs >= 2 seeds per row with some spread)"
    if test["p"] >= ALPHA:
        return f"not resolved (p = {test['p']:.2f})"
    return ("reproduced" if test["diff"] * sign > 0 else "reversed") + f" (p = {test['p']:.3f})"


def directions(results: dict[str, list[dict]], protocol: str = "fast", *, fid_key: str = "fid",
               cls_key: str | None = None) -> tuple[str, list[dict]]:
    """Each Table 1 direction whose two variants were run: Welch's t-test over seeds, a verdict, Markdown.

    ``fid_key`` / ``cls_key``: the per-seed result keys that stand for FID and Cls. (default: ``fid`` and the
    protocol's Cls. column), so a second generation measure or the test column can be tested the same way."""
    keys = {"fid": fid_key, "cls": cls_key or _CLS_KEYS[protocol][0]}
    rows = []
    for claim, a, b, metric, sign in DIRECTIONS:
        va = [r[keys[metric]] for r in results.get(a, []) if r.get(keys[metric]) is not None]
        vb = [r[keys[metric]] for r in results.get(b, []) if r.get(keys[metric]) is not None]
        if not va or not vb:
            continue
        scale = 100.0 if metric == "cls" else 1.0
        va, vb = [v * scale for v in va], [v * scale for v in vb]
        test = welch(va, vb)
        need = None
        if len(va) > 1 and len(vb) > 1:  # the measured difference and pooled spread, taken as the truth
            need = seeds_for_power(test["diff"], ((statistics.variance(va) + statistics.variance(vb)) / 2) ** 0.5)
        test["seeds_for_power"] = need
        label = metric if keys[metric] in ("fid", _CLS_KEYS[protocol][0]) else keys[metric]
        rows.append({"claim": claim, "a": a, "b": b, "metric": metric, "label": label, "paper_sign": sign,
                     "paper_diff": PAPER_TABLE1[a][metric] - PAPER_TABLE1[b][metric], **test, "verdict": verdict(test, sign)})
    if not rows:
        return "", rows
    lines = [(f"Directions (Welch's t-test over seeds, two-sided, verdict at p < {ALPHA}; Cls. in points; the last "
             "column: seeds per row a t-test needs to find the measured difference at the measured spread):"), "",
             ("| claim | A - B | paper | measured (95% interval) | seeds | verdict | seeds for "
             f"{POWER:.0%} power |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = "" if r["ci95"] is None else f" ({r['ci95'][0]:+.2f} to {r['ci95'][1]:+.2f})"
        need = r["seeds_for_power"]
        lines.append(f"| {r['claim']} | {r['a']} - {r['b']} ({r['label']}) | {r['paper_diff']:+.2f} | "
                     f"{r['diff']:+.2f}{ci} | {r['n'][0]}, {r['n'][1]} | {r['verdict']} | "
                     f"{'n/a' if need is None else need} |")
    return "\n".join(lines), rows


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
    if not marker.is_file():
        # written once, atomically: `--jobs` workers check it as they start, and a worker that read a marker
        # while another truncated it to rewrite it saw an empty protocol and refused its run
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, protocol + "\n")


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
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give 1 or more runs at a time")
    if args.seeds < 1 or args.first_seed < 0:
        raise ConfigError(f"--seeds {args.seeds} --first-seed {args.first_seed}: give 1 or more seeds from 0 or above")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    paper = args.protocol == "paper"
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:  # fail fast on a typo, before hours of training
        presets.resolve(args.scale, v, args.set)
    eval_every = _eval_every(args, presets.resolve(args.scale, variants[0], args.set).train.eval_every) if paper else 0
    out = Path(args.out)
    metrics = (["linear-paper"] if paper else ["linear"]) + ["fid"] + (["is"] if args.inception_weights else [])
    check_requirements(metrics, inception_weights=args.inception_weights)  # before hours of training
    _claim_protocol(out, args.protocol)  # after every check: a refused ablation leaves nothing behind
    cells = [(variant, seed) for seed in seeds for variant in variants]  # seed-major: an
    # ablation stopped part-way still has every variant at least once
    if args.cell:
        cells = [_parse_cell(args.cell, variants, seeds)]
    elif args.jobs > 1:
        status = _run_jobs(args, [(v, sd) for v, sd in cells if not (_run_dir(out, v, sd) / "eval.json").is_file()], out)
        if status:
            return status
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for variant, seed in cells:
        res = _run_cell(args, variant, seed, _run_dir(out, variant, seed), metrics, eval_every, paper)
        if isinstance(res, int):  # stopped by a signal: not finished
            return res
        results[variant].append(res)
    if args.cell:
        return 0
    md, table = summarise(results, args.protocol)
    dmd, drows = directions(results, args.protocol)
    md = md + ("\n\n" + dmd if dmd else "")
    print(md)
    atomic_write_text(out / "ablation.md", md + "\n")
    atomic_write_text(out / "ablation.json", json.dumps(
        {"scale": args.scale, "protocol": args.protocol, "protocol_description": PROTOCOLS[args.protocol],
         "eval_every": eval_every or None, "rows": table, "directions": drows}, indent=2))
    print(f"tables: {out / 'ablation.md'}, {out / 'ablation.json'}")
    return 0


def _run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / variant / f"seed{seed}"


def _run_cell(args, variant: str, seed: int, run: Path, metrics: list[str], eval_every: int,
              paper: bool) -> dict | int:
    """Train (or resume) and evaluate one variant x seed; its eval.json, or the exit status of a stopped run."""
    done = run / "eval.json"
    if done.is_file():
        print(f"== {variant} seed {seed}: done, skipped")
        return json.loads(done.read_text())
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
                   inception_weights=args.inception_weights, pictures=False,
                   inception_precision=args.inception_precision)
    res["protocol"] = args.protocol
    atomic_write_text(done, json.dumps(res, indent=2))
    return res


def _parse_cell(cell: str, variants: list[str], seeds: range) -> tuple[str, int]:
    variant, _, seed = cell.rpartition(":")
    if variant not in variants or not seed.isdigit() or int(seed) not in seeds:
        raise ConfigError(f"--cell {cell!r}: expected VARIANT:SEED with VARIANT in --variants and SEED in "
                          f"{seeds.start}..{seeds.stop - 1} (--first-seed, --seeds)")
    return variant, int(seed)


def _run_jobs(args, cells: list[tuple[str, int]], out: Path) -> int:
    """Run ``cells`` as ``bigbigan ablate ... --cell V:S`` subprocesses, ``args.jobs`` at a time, the threads split
    between them. Returns 0 when every one finished, else the first failing exit status (no new job starts; the
    running ones finish). SIGINT / SIGTERM is passed on to the running jobs, which checkpoint and stop: 130 / 143."""
    threads = max(1, torch.get_num_threads() // args.jobs)
    env = worker_env(threads)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    pending, running, status = list(cells), {}, 0
    print(f"== {len(cells)} runs, {args.jobs} at a time, {threads} thread(s) each; logs in {out / 'logs'}")
    with stop_signals() as stop:
        while (pending or running) and not stop:
            while pending and len(running) < args.jobs and not status:
                variant, seed = pending.pop(0)
                log = out / "logs" / f"{variant}-seed{seed}.log"
                cmd = [sys.executable, "-m", "bigbigan", *args.argv, "--cell", f"{variant}:{seed}", "--jobs", "1"]
                with open(log, "ab") as fh:
                    running[subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)] = (variant, seed, log)
                print(f"== {variant} seed {seed}: started (log {log})", flush=True)
            for proc in [p for p in running if p.poll() is not None]:
                variant, seed, log = running.pop(proc)
                print(f"== {variant} seed {seed}: " + ("finished" if proc.returncode == 0 else
                                                       f"failed (exit {proc.returncode}); see {log}"), flush=True)
                status = status or proc.returncode
            pending = [] if status else pending
            time.sleep(0.2)
        if stop:  # Ctrl-C or SIGTERM: passed on, so each run saves its checkpoint and a rerun resumes it
            for proc in running:
                proc.send_signal(getattr(signal, stop.name))
            for proc in running:
                proc.wait()
            return 130 if stop.name == "SIGINT" else 143
    return status
