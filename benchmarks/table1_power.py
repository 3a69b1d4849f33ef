"""Table 1's directions with a second generation measure: an ablation's runs, scored again, tested over seeds.

    bigbigan ablate --scale small32 --protocol paper --seeds 3 ... --out ABL     # first: the runs
    python benchmarks/table1_power.py ABL --samples 5000 --json benchmarks/results/table1_paper_small32.json
    # more seeds later (bigbigan ablate ... --first-seed 3 --out ABL2), the first ones' directories gone:
    python benchmarks/table1_power.py ABL2 --earlier benchmarks/results/table1_paper_small32.json --json ...

For every finished run (ABL/VARIANT/seedN/eval.json) the checkpoint its evaluation used (the early-stopped one
under ``--protocol paper``) is scored with the Fréchet distance and KID in the small Fashion-MNIST classifier's
feature space (benchmarks/classifier_fd.py: cheap, so ``--samples`` can be 5-10K where the Inception FID of an
ablation uses 1-2K), kept beside the run as cfd_SAMPLES.json (a rerun reuses it). Then every Table 1 direction
is tested over seeds with Welch's t-test (``bigbigan.ablate.directions``) on each measure: Cls. (train_val, the
paper's column), test top-1, Inception FID and CFD. Prints Markdown; ``--json`` writes rows and directions.
``--earlier`` folds in the per-seed figures of an earlier ``--json`` (same protocol and sample count) whose run
directories are no longer at hand; a seed found twice is refused, never counted twice.
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


def cells(root: Path) -> dict[str, list[Path]]:
    """Finished runs of an ablation directory: {variant: [run dirs in seed order]}."""
    out: dict[str, list[Path]] = {}
    for ev in sorted(root.glob("*/seed*/eval.json"), key=lambda p: (p.parent.parent.name, int(p.parent.name[4:]))):
        out.setdefault(ev.parent.parent.name, []).append(ev.parent)
    return out


COLUMNS = [("Cls. % (train_val)", None, 100), ("test top-1 %", None, 100), ("FID", "fid", 1), ("CFD", "cfd", 1),
           ("KID (classifier)", "ckid", 1), ("step", "step", 1)]  # None: the protocol's Cls. / test key


def columns(protocol: str) -> list[tuple[str, str, float]]:
    """(heading, per-seed result key, scale in the table) of each measure under ``protocol``."""
    cls_key, test_key = _CLS_KEYS[protocol]
    keys = [cls_key, test_key] + [c[1] for c in COLUMNS[2:]]
    return [(c[0], key, c[2]) for c, key in zip(COLUMNS, keys) if key]


def earlier(path: Path, protocol: str, samples: int) -> dict[str, list[dict]]:
    """Per-seed records ({key: value, "seed": N}) of an earlier ``--json``, in its table's units undone."""
    d = json.loads(path.read_text())
    if d.get("protocol") != protocol or d.get("samples") != samples:
        raise SystemExit(f"table1_power: {path} holds protocol {d.get('protocol')} / {d.get('samples')} samples, "
                         f"not {protocol} / {samples}: its figures are not comparable")
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
           score) -> dict[str, list[dict]]:
    """Every seed's record: the earlier JSONs' first, then each run's eval.json with ``score(run)`` merged in."""
    results: dict[str, list[dict]] = {}
    for path in earlier_jsons:
        for variant, recs in earlier(Path(path), protocol, samples).items():
            for rec in recs:
                add_seed(results, variant, rec, path)
    for variant, runs in found.items():
        for run in runs:
            rec = {**json.loads((run / "eval.json").read_text()), **score(run), "seed": int(run.name[4:])}
            add_seed(results, variant, rec, run)
            print(f"{variant} {run.name}: CFD {rec['cfd']:.3f}, FID {rec.get('fid', float('nan')):.2f}, "
                  f"Cls. {100 * rec.get(_CLS_KEYS[protocol][0], float('nan')):.2f}", flush=True)
    return results


def score_cell(run: Path, samples: int, net, f_train) -> dict:
    """CFD / KID of ``samples`` EMA samples of the evaluated checkpoint (cached as run/cfd_SAMPLES.json)."""
    cache = run / f"cfd_{samples}.json"
    ev = json.loads((run / "eval.json").read_text())
    if cache.is_file():
        rec = json.loads(cache.read_text())
        if rec.get("checkpoint") == ev["checkpoint"]:
            return rec
    t0 = time.monotonic()
    model = bigbigan.load(ev["checkpoint"])
    rec = classifier_fd.distances(f_train, classifier_fd.features(net, model.sample(samples, seed=0)))
    rec.update({"checkpoint": ev["checkpoint"], "step": ev.get("step"), "samples": samples,
                "seconds": time.monotonic() - t0})
    cache.write_text(json.dumps(rec, indent=2) + "\n")
    return rec


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
    p.add_argument("ablation", help="an ablation's --out directory")
    p.add_argument("--samples", type=int, default=5000, help="samples (and training images) for CFD/KID")
    p.add_argument("--json", help="write the table and every direction here")
    p.add_argument("--earlier", action="append", default=[], metavar="JSON",
                   help="an earlier --json of this script (same protocol, --samples): its seeds join the rows")
    args = p.parse_args(argv)
    root = Path(args.ablation)
    protocol = (root / "protocol.txt").read_text().strip() if (root / "protocol.txt").is_file() else "fast"
    found = cells(root)
    if not found:
        raise SystemExit(f"table1_power: no finished runs (VARIANT/seedN/eval.json) under {root}")
    net = classifier_fd.load_classifier()
    f_train = classifier_fd.features(net, classifier_fd.split_tensors("train", args.samples)[0])
    results = gather(found, args.earlier, protocol, args.samples,
                     lambda run: score_cell(run, args.samples, net, f_train))
    md, rows = table(results, protocol)
    tests = {}
    parts = [f"Protocol: {protocol}; CFD/KID on {args.samples} samples.", "", md]
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
        Path(args.json).write_text(json.dumps({"ablation": str(root), "earlier": args.earlier, "protocol": protocol, "samples": args.samples,
                                               "rows": rows, "directions": tests, "torch": torch.__version__,
                                               "command": "python benchmarks/table1_power.py " + " ".join(
                                                   argv if argv is not None else sys.argv[1:])}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
