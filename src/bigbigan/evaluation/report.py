"""``bigbigan report RUN_DIR``: one self-contained HTML page (config, metrics, curves, grids) plus its PNGs.

Images are embedded as data URIs, so the page opens from disk in any browser without a server; the PNGs are
also written beside it for reuse.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from pathlib import Path

from PIL import Image

from ..checkpoint import CheckpointError
from ..files import read_jsonl
from .pictures import plot_curves

CURVE_KEYS = ["loss/D", "loss/EG", "acc/D/x", "acc/D/z", "acc/D/xz", "E/sigma/mean", "grad_norm/D",
              "grad_norm/EG", "perf/it_per_s"]
GRID_WIDTH = 520  # widest an image grid is shown (CSS pixels)


def _img(path: Path, caption: str, plot: bool = False) -> str:
    """A figure with the PNG embedded. Plots span the page width (their labels stay legible); image grids are
    enlarged by a whole factor (at most 4, to at most GRID_WIDTH pixels) so that small samples stay crisp."""
    data = base64.b64encode(path.read_bytes()).decode()
    if plot:
        attrs, cls = "", ' class="plot"'
    else:
        with Image.open(path) as im:
            w, h = im.size
        k = max(1, min(4, GRID_WIDTH // max(w, 1)))
        attrs, cls = f' width="{w * k}" height="{h * k}"', ""
    return (f'<figure{cls}><img alt="{html.escape(caption)}"{attrs} src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(rows: list[tuple[str, object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>metric</th><th>value</th></tr>{body}</table>"


def _latest(folder: Path, prefix: str) -> Path | None:
    found = sorted(folder.glob(f"{prefix}-*.png")) if folder.is_dir() else []
    return found[-1] if found else None


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write RUN_DIR/report/index.html (or ``out``) and return its path."""
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise CheckpointError(f"{run} is not a run directory (no config.yaml)")
    out = Path(out) if out else run / "report" / "index.html"
    pics = out.parent
    pics.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>bigbigan run: {html.escape(str(run))}</h1>"]

    eval_json = run / "eval.json"
    if eval_json.is_file():
        res = json.loads(eval_json.read_text())
        rows = [(k, v) for k, v in res.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        parts += ["<h2>Evaluation (EMA models)</h2>", _table(rows)]
    else:
        parts.append("<p>No evaluation yet: run <code>bigbigan eval RUN_DIR</code>.</p>")

    figures = []
    stats = read_jsonl(run / "stats.jsonl")
    if stats:
        keys = [k for k in CURVE_KEYS if any(k in r for r in stats)]
        figures.append((plot_curves(stats, pics / "training_curves.png", keys=keys), "training curves", True))
    metrics = read_jsonl(run / "metrics.jsonl")
    if metrics:
        keys = [k for k in ("train_val_top1", "fid") if any(k in r for r in metrics)]
        figures.append((plot_curves(metrics, pics / "learning_curves.png", keys=keys),
                        "periodic evaluation (App. D learning curves)", True))
    for prefix, caption in (("samples", "samples of the EMA generator"),
                            ("recon", "reconstructions G(E(x)): inputs above, outputs below")):
        p = _latest(run / "images", prefix)
        if p is not None:
            dst = pics / p.name
            shutil.copyfile(p, dst)
            figures.append((dst, f"{caption} (step {int(p.stem.split('-')[-1])})", False))
    for name, caption in (("samples.png", "evaluation samples"), ("reconstructions.png", "test reconstructions"),
                          ("interpolations.png", "latent interpolations G((1-t) E(x_a) + t E(x_b))"),
                          ("neighbours.png", "nearest training neighbours (D1) of test images"),
                          ("filters.png", "first-layer encoder filters")):
        p = run / "eval" / name
        if p.is_file():
            dst = pics / f"eval-{name}"
            shutil.copyfile(p, dst)
            figures.append((dst, caption, False))
    if figures:
        parts.append("<h2>Pictures</h2>" + "".join(_img(*f) for f in figures))
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape((run / 'config.yaml').read_text())}</pre>"]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "h1,td{overflow-wrap:anywhere}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
             f"figure{{display:inline-block;margin:8px;vertical-align:top;max-width:{GRID_WIDTH}px}}"
             "img{max-width:100%;height:auto;image-rendering:pixelated}"
             "figure.plot{display:block;max-width:none}figure.plot img{image-rendering:auto}"
             "pre{background:#f6f6f6;padding:8px;overflow-x:auto}")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>bigbigan report</title>"
                   f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return out
