"""Table 1's directions with a second generation measure: an ablation's runs, scored again, tested over seeds.

    bigbigan ablate --scale small32 --protocol paper --seeds 3 ... --out ABL     # first: the runs
    python benchmarks/table1_power.py ABL --samples 5000 --json benchmarks/results/table1_paper_small32.json
    # more seeds later (bigbigan ablate ... --first-seed 3 --out ABL2), the first ones' directories gone:
    python benchmarks/table1_power.py ABL2 --earlier benchmarks/results/table1_paper_small32.json --json ...
    # or, the directories still at hand, several at once, with Inception FID again at more samples:
    python benchmarks/table1_power.py ABL ABL2 --fid-samples 5000 --json ...

For every finished run (ABL/VARIANT/seedN/eval.json) the checkpoint its evaluation used (the early-stopped one
under ``--protocol paper``) is scored with the Fréchet distance and KID in the small Fashion-MNIST classifier's
feature space (benchmarks/classifier_fd.py: cheap, so ``--samples`` can be 5-10K where the Inception FID of an
ablation uses 1-2K), kept beside the run as cfd_SAMPLES.json (a rerun reuses it). Then every Table 1 direction
is tested over seeds with Welch's t-test (``bigbigan.ablate.directions``) on each measure: Cls. (train_val, the
paper's column), test top-1, Inception FID and CFD. Prints Markdown; ``--json`` writes rows and directions.
``--earlier`` folds in the per-seed figures of an earlier ``--json`` (same protocol and sample counts) whose run
directories are no longer at hand; several ablation directories (same protocol) join the same way; a seed found
twice is refused, never counted twice. ``--fid-samples N`` scores the Inception FID again on N samples per side
(the ablation's own FID uses 1-2K, biased upward and noisy), with the Inception precision the run's evaluation
used, cached beside the run as fid_N.json; it replaces the FID column and its tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classifier_fd  # the sibling benchmark script

import bigbigan
from bigbigan.ablate import _CLS_KEYS, directions, mean_std


def cells(*roots: Path) -> dict[str, list[Path]]:
    """Finished runs of one or more ablation directories: {variant: [run dirs in seed order]}."""
    out: dict[str, list[Path]] = {}
    found = [ev for root in roots for ev in root.glob("*/seed*/eval.json")]
    for ev in sorted(found, key=lambda p: (p.parent.parent.name, int(p.parent.name[4:]))):
        out.setdefault(ev.parent.parent.name, []).append(ev.parent)
    return out


def protocol_of(roots: list[Path]) -> str:
    """The protocol the ablation directories share (protocol.txt; "fast" where absent); mixed ones are refused."""
    found = {r: (r / "protocol.txt").read_text().strip() if (r / "protocol.txt").is_file() else "fast" for r in roots}
    if len(set(found.values())) > 1:
        raise SystemExit("table1_power: the ablation directories ran different protocols ("
                         + ", ".join(f"{r}: {p}" for r, p in found.items()) + "): their figures are not comparable")
    return next(iter(found.values()))


COLUMNS = [("Cls. % (train_val)", None, 100), ("test top-1 %", None, 100), ("FID", "fid", 1), ("CFD", "cfd", 1),
           ("KID (classifier)", "ckid", 1), ("step", "step", 1)]  # None: the protocol's Cls. / test key


def columns(protocol: str) -> list[tuple[str, str, float]]:
    """(heading, per-seed result key, scale in the table) of each measure under ``protocol``."""
    cls_key, test_key = _CLS_KEYS[protocol]
    keys = [cls_key, test_key] + [c[1] for c in COLUMNS[2:]]
    return [(c[0], key, c[2]) for c, key in zip(COLUMNS, keys) if key]


def earlier(path: Path, protocol: str, samples: int, fid_samples: int | None = None) -> dict[str, list[dict]]:
    """Per-seed records ({key: value, "seed": N}) of an earlier ``--json``, in its table's units undone.

    ``fid_samples``: the ``--fid-samples`` of this invocation (None: each run's own evaluation FID)."""
    d = json.loads(path.read_text())
    if d.get("protocol") != protocol or d.get("samples") != samples:
        raise SystemExit(f"table1_power: {path} holds protocol {d.get('protocol')} / {d.get('samples')} samples, "
                         f"not {protocol} / {samples}: its figures are not comparable")
    if d.get("fid_samples") != fid_samples:
        def said(n):
            return f"FID on {n} samples" if n else "the evaluations' own FID"
        raise SystemExit(f"table1_power: {path} holds {said(d.get('fid_samples'))}, this run "
                         f"{said(fid_samples)}: its FID figures are not comparable")
    out: dict[str, list[dict]] = {}
    for variant, row in d["rows"].items():
        n = row["seeds"]
        seeds = row.get("seed_ids") or list(range(n))  # JSON written before seed_ids: its seeds were 0..n-1
        recs = [{"seed": s} for s in seeds]
        for _, key, scale in columns(protocol):
            vals = (row.get(key) or {}).get("per_seed", [])
            if len(vals) != n:  # a measure missing for some seed: which seed it belongs to is unknown
                raise SystemExit(f"table1_power: {path}: {variant} has {len(vals)} {key} values for {n} seeds")
            for rec, v in zip(recs, vals):
                rec[key] = v / scale
        out[variant] = recs
    return out


def add_seed(results: dict[str, list[dict]], variant: str, rec: dict, source) -> None:
    """Append one seed's record to its row; a seed already there (from another source) is an error."""
    if rec["seed"] in {r.get("seed") for r in results.get(variant, [])}:
        raise SystemExit(f"table1_power: {variant} seed {rec['seed']} appears again in {source}: a seed counts once")
    results.setdefault(variant, []).append(rec)


def gather(found: dict[str, list[Path]], earlier_jsons: list[str], protocol: str, samples: int,
           score, fid_samples: int | None = None) -> dict[str, list[dict]]:
    """Every seed's record: the earlier JSONs' first, then each run's eval.json with ``score(run)`` merged in."""
    results: dict[str, list[dict]] = {}
    for path in earlier_jsons:
        for variant, recs in earlier(Path(path), protocol, samples, fid_samples).items():
            for rec in recs:
                add_seed(results, variant, rec, path)
    for variant, runs in found.items():
        for run in runs:
            rec = {**json.loads((run / "eval.json").read_text()), **score(run), "seed": int(run.name[4:])}
            add_seed(results, variant, rec, run)
            print(f"{variant} {run.name}: CFD {rec['cfd']:.3f}, FID {rec.get('fid', float('nan')):.2f}, "
                  f"Cls. {100 * rec.get(_CLS_KEYS[protocol][0], float('nan')):.2f}", flush=True)
    return results


def cached_score(run: Path, name: str, compute) -> dict:
    """``compute(model, eval_record)`` for the checkpoint the run's evaluation used, kept as run/NAME.json and
    reused while that checkpoint stays the evaluated one."""
    cache = run / f"{name}.json"
    ev = json.loads((run / "eval.json").read_text())
    if cache.is_file():
        rec = json.loads(cache.read_text())
        if rec.get("checkpoint") == ev["checkpoint"]:
            return rec
    t0 = time.monotonic()
    rec = compute(bigbigan.load(ev["checkpoint"]), ev)
    rec.update({"checkpoint": ev["checkpoint"], "seconds": time.monotonic() - t0})
    cache.write_text(json.dumps(rec, indent=2) + "\n")
    return rec


def score_cell(run: Path, samples: int, net, f_train) -> dict:
    """CFD / KID of ``samples`` EMA samples of the evaluated checkpoint (cached as run/cfd_SAMPLES.json)."""
    def compute(model, ev):
        rec = classifier_fd.distances(f_train, classifier_fd.features(net, model.sample(samples, seed=0)))
        return {**rec, "step": ev.get("step"), "samples": samples}

    return cached_score(run, f"cfd_{samples}", compute)


def score_fid(run: Path, samples: int) -> dict:
    """Inception FID / KID of ``samples`` EMA samples of the evaluated checkpoint against as many training images,
    at the Inception precision of the run's evaluation (cached as run/fid_SAMPLES.json)."""
    from bigbigan.evaluation.generative import generation_metrics

    return cached_score(run, f"fid_{samples}", lambda model, ev: generation_metrics(
        model.cfg, model.G, n=samples, metrics={"fid", "kid"}, inception_weights=None,
        inception_precision=ev.get("inception_precision")))


def table(results: dict[str, list[dict]], protocol: str) -> tuple[str, dict]:
    """Per-variant mean ± std of every measure (and every seed's value), as Markdown and JSON."""
    cols = columns(protocol)
    lines = ["| variant | seeds | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 2) + "|"]
    rows = {}
    for variant, runs in results.items():
        row = {"seeds": len(runs)}
        if all("seed" in r for r in runs):
            row["seed_ids"] = [r["seed"] for r in runs]
        cells_md = []
        for _, key, scale in cols:
            vals = [r[key] * scale for r in runs if r.get(key) is not None]
            ms = mean_std(vals)
            row[key] = {"mean": ms[0], "std": ms[1], "n": len(vals), "per_seed": vals} if ms else None
            fmt = ".0f" if key == "step" else (".4f" if key == "ckid" else ".2f")
            cells_md.append("n/a" if not vals else f"{row[key]['mean']:{fmt}} ± {row[key]['std']:{fmt}}")
        rows[variant] = row
        lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells_md) + " |")
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ablation", nargs="+", help="an ablation's --out directory (several: their seeds join)")
    p.add_argument("--samples", type=int, default=5000, help="samples (and training images) for CFD/KID")
    p.add_argument("--fid-samples", type=int, help="Inception FID again on this many samples per side (cached per run)")
    p.add_argument("--json", help="write the table and every direction here")
    p.add_argument("--earlier", action="append", default=[], metavar="JSON",
                   help="an earlier --json of this script (same protocol, --samples): its seeds join the rows")
    args = p.parse_args(argv)
    roots = [Path(a) for a in args.ablation]
    protocol = protocol_of(roots)
    found = cells(*roots)
    if not found:
        raise SystemExit(f"table1_power: no finished runs (VARIANT/seedN/eval.json) under {', '.join(args.ablation)}")
    if args.fid_samples is not None and args.fid_samples < 2:
        raise SystemExit(f"table1_power: --fid-samples must be at least 2, got {args.fid_samples}")
    net = classifier_fd.load_classifier()
    f_train = classifier_fd.features(net, classifier_fd.split_tensors("train", args.samples)[0])
    def score(run: Path) -> dict:
        rec = score_cell(run, args.samples, net, f_train)
        if args.fid_samples:
            fid = score_fid(run, args.fid_samples)
            rec = {**rec, "fid": fid["fid"], "fid_samples": fid["fid_samples"]}
        return rec

    results = gather(found, args.earlier, protocol, args.samples, score, args.fid_samples)
    md, rows = table(results, protocol)
    tests = {}
    fid_note = f"Inception FID on {args.fid_samples} samples" if args.fid_samples else "FID: each evaluation's own"
    parts = [f"Protocol: {protocol}; CFD/KID on {args.samples} samples; {fid_note}.", "", md]
    test_key = _CLS_KEYS[protocol][1]
    for name, kw in (("cls_fid", {}), ("cfd", {"fid_key": "cfd"}), ("test_top1", {"cls_key": test_key})):
        if name == "test_top1" and not test_key:
            continue
        dmd, drows = directions(results, protocol, **kw)
        if name != "cls_fid":  # the Cls. rows of the CFD pass and the FID rows of the test pass repeat others
            keep = "fid" if name == "cfd" else "cls"
            drows = [r for r in drows if r["metric"] == keep]
            dmd = "\n".join(ln for ln in dmd.splitlines() if not ln.startswith("| ") or ln.startswith("| claim")
                            or f"({'cfd' if name == 'cfd' else test_key})" in ln)
        tests[name] = drows
        parts += ["", dmd]
    text = "\n".join(parts)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"ablation": [str(r) for r in roots], "earlier": args.earlier,
                                               "protocol": protocol, "samples": args.samples,
                                               "fid_samples": args.fid_samples,
                                               "rows": rows, "directions": tests, "torch": torch.__version__,
                                               "command": "python benchmarks/table1_power.py " + " ".join(
                                                   argv if argv is not None else sys.argv[1:])}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
