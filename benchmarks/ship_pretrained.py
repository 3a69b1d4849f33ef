"""Ship a trained run inside the package as a pretrained model: ``bigbigan.load(NAME)`` then works offline.

    python benchmarks/ship_pretrained.py benchmarks/runs/fashion_mnist/trained --name fashion-mnist

1. exports the run's EMA G and E (``bigbigan export``) into ``src/bigbigan/pretrained/NAME/`` (config.json,
   model.safetensors), stored as ``--dtype``;
2. loads it back with ``bigbigan.load`` and measures the fixed linear probe (``bigbigan.evaluation.fixed_probe``:
   class-stratified seeded subsets, Fashion-MNIST 200 + 100 per class, so a fixed 1K test subset) on the
   weights as stored; with a storage dtype other than float32 the float32 figure is measured too (the cost
   of the rounding);
3. writes ``metadata.json`` (what it is: data, iterations, wall time, the run's eval.json figures, the probe
   figure with its protocol, licences, size) and ``card.md`` (the same for people).

``tests/test_pretrained.py`` re-measures the probe of every shipped model and compares it with the record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

import bigbigan
from bigbigan import checkpoint as bckpt
from bigbigan.evaluation.fixed_probe import ProbeProtocol, fixed_probe
from bigbigan.export import export_run, write_export

MAX_MB = 20.0  # the package must stay small: a shipped model over this is refused
DATA_LICENCES = {
    "fashion-mnist": "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research), MIT licence",
    "mnist": "MNIST (LeCun, Cortes & Burges), CC BY-SA 3.0",
    "digits": "scikit-learn's 8x8 digits (UCI optical recognition of handwritten digits), CC BY 4.0",
}
FIGURE_KEYS = ("linear_avepool_top1", "linear_bn_crelu_top1", "linear_sweep_avepool_top1", "knn_d1_k25_top1",
               "fid", "fid_samples", "kid", "rel_l1", "split", "step")


def _card(meta: dict) -> str:
    p = meta["probe"]
    from bigbigan.evaluation.report import duration, fmt_value

    figs = "\n".join(f"| {k} | {fmt_value(k, v)} |" for k, v in meta["run_figures"].items()) or \
        "| (no eval.json in the run) | |"
    return f"""# bigbigan pretrained model: {meta['name']}

{meta['what']}

- **Data**: {meta['data']} ({meta['data_licence']}).
- **Training**: {meta['iterations']} iterations, {duration(meta['train_minutes'])} of wall time
  (`{meta['scale']}` / `{meta['variant']}`; full configuration in `config.json`).
- **Weights**: EMA G and E, stored as {meta['dtype']} ({meta['size_mb']:.1f} MB); licence {meta['licence']}.
- **Check**: linear probe top-1 {p['top1']:.4f} on a fixed {p['test_images']}-image class-stratified test
  subset ({p['train_images']} training images; protocol in `metadata.json`), re-measured by
  `tests/test_pretrained.py`.

```python
import bigbigan
model = bigbigan.load("{meta['name']}")
features = model.encode(images)          # [N, {meta['feature_dim']}]
samples = model.sample(16, seed=0)       # [16, C, R, R] in [-1, 1]
```

Figures of the run's own evaluation (`bigbigan eval`, test split, before export):

| metric | value |
|---|---|
{figs}
"""


def ship(run: str | Path, name: str, *, root: Path | None = None, dtype: str = "float32",
         protocol: ProbeProtocol | None = None, which: str = "latest", licence: str = "Apache-2.0",
         progress: bool = True) -> Path:
    """Export ``run`` as the shipped model ``name`` under ``root`` (default: the package's pretrained folder)."""
    from bigbigan.evaluation.report import training_minutes
    from bigbigan.files import read_jsonl

    root = Path(root) if root is not None else bckpt.PRETRAINED_ROOT
    out = root / name
    run = Path(run)
    with tempfile.TemporaryDirectory() as tmp:
        staged = export_run(run, Path(tmp) / "float32", which=which, progress=progress)
        model = bigbigan.load(staged)
        protocol = protocol or ProbeProtocol(data=model.cfg.data.source, data_dir=model.cfg.data.data_dir)
        top1_float32 = None
        if dtype != "float32":  # the same weights and statistics, rounded; the figure is measured on those
            top1_float32 = fixed_probe(model, protocol, progress=progress)["top1"]
            info = {k: model.info[k] for k in ("step", "checkpoint")}
            staged = write_export(Path(tmp) / name, model.cfg, model.G, model.E, stats=model.feature_stats,
                                  dtype=dtype, info=info)
            model = bigbigan.load(staged)
        cfg = model.cfg
        probe = fixed_probe(model, protocol, progress=progress)
        if top1_float32 is not None:
            probe["top1_float32"] = top1_float32
        size_mb = sum(f.stat().st_size for f in staged.iterdir()) / 1e6
        if size_mb > MAX_MB:
            raise SystemExit(f"ship_pretrained: {size_mb:.1f} MB is over the {MAX_MB:.0f} MB limit; "
                             "try --dtype bfloat16 or float16")
        eval_json = run / "eval.json" if run.is_dir() else None
        res = json.loads(eval_json.read_text()) if eval_json is not None and eval_json.is_file() else {}
        m = cfg.model
        meta = {
            "name": name,
            "what": (f"BigBiGAN ({cfg.scale} scale, {cfg.variant} variant): EMA generator G ({m.resolution}px, "
                     f"{m.channels} channel(s)) and encoder E ({m.encoder.arch}, width x{m.encoder.width}, "
                     f"{m.e_resolution}px input) trained unsupervised on {cfg.data.source}."),
            "data": f"{cfg.data.source} training split",
            "data_licence": DATA_LICENCES.get(cfg.data.source, "see the data set's own terms"),
            "licence": licence,
            "scale": cfg.scale,
            "variant": cfg.variant,
            "iterations": int(model.info.get("step", 0)),
            "train_minutes": training_minutes(read_jsonl(run / "stats.jsonl")) if run.is_dir() else 0.0,
            "dtype": dtype,
            "size_mb": size_mb,
            "feature_dim": model.feature_dim,
            "run_figures": {k: res[k] for k in FIGURE_KEYS if k in res},
            "probe": {**probe, "protocol": protocol.to_dict()},
            "date": datetime.date.today().isoformat(),
            "torch": torch.__version__,
        }
        (staged / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        (staged / "card.md").write_text(_card(meta))
        if out.exists():
            shutil.rmtree(out)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, out)
    return out


def check_shipped(name: str, *, progress: bool = False) -> tuple[float, float]:
    """(recorded, re-measured) probe top-1 of the shipped model ``name``."""
    meta = json.loads((bckpt.PRETRAINED_ROOT / name / "metadata.json").read_text())
    protocol = ProbeProtocol(**meta["probe"]["protocol"])
    return meta["probe"]["top1"], fixed_probe(bigbigan.load(name), protocol, progress=progress)["top1"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory (or checkpoint) to ship")
    p.add_argument("--name", required=True, help="the name bigbigan.load will know it by")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    p.add_argument("--root", help="pretrained folder (default: the package's src/bigbigan/pretrained)")
    p.add_argument("--train-per-class", type=int, default=200)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--probe-steps", type=int, default=1000)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from bigbigan.config import load_yaml

    run = Path(args.run)
    cfg_path = run / "config.yaml" if run.is_dir() else None
    data = load_yaml(cfg_path).data if cfg_path is not None and cfg_path.is_file() else None
    protocol = None
    if data is not None:
        protocol = ProbeProtocol(data=data.source, data_dir=data.data_dir, train_per_class=args.train_per_class,
                                 test_per_class=args.test_per_class, steps=args.probe_steps)
    out = ship(run, args.name, root=Path(args.root) if args.root else None, dtype=args.dtype, protocol=protocol,
               which=args.checkpoint, progress=not args.no_progress)
    meta = json.loads((out / "metadata.json").read_text())
    extra = f" (float32: {meta['probe']['top1_float32']:.4f})" if "top1_float32" in meta["probe"] else ""
    print(f"shipped {args.name}: {out} ({meta['size_mb']:.1f} MB, {args.dtype}); fixed probe top-1 "
          f"{meta['probe']['top1']:.4f}{extra} on {meta['probe']['test_images']} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
