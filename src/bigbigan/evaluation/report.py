"""``bigbigan report RUN_DIR``: one self-contained HTML page (config, metrics, curves, grids) plus its PNGs.

Images are embedded as data URIs, so the page opens from disk in any browser without a server; the PNGs are
also written beside it for reuse.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from pathlib import Path

from PIL import Image

from ..checkpoint import CheckpointError, list_checkpoints
from ..config import load_yaml
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


def fmt_value(key: str, v: object) -> str:
    """A metric value for people: accuracies as percentages, other floats to 4 significant digits (lr 0.01,
    FID 26.33, rel. L1 0.3488), integers as they are."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if math.isnan(v):
        return "n/a"
    if key.endswith(("top1", "top5")):
        return f"{100 * v:.2f}%"
    return f"{v:.4g}"


def _cell(key: str, v: object) -> str:
    """A table cell whose tooltip (``title``) is the eval.json key it shows."""
    return f'<td title="{html.escape(key)}">{html.escape(fmt_value(key, v))}</td>'


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def training_clock(stats: list[dict]) -> tuple[list[tuple[int, float]], float]:
    """The sessions of a run's ``stats.jsonl`` records and its total training minutes. ``time/minutes`` restarts at
    0 when a run is resumed (and the records after the resumed checkpoint are dropped), so each session is
    ``(after_step, minutes_before)``: it logged the steps after ``after_step`` (-1 for the first), with
    ``minutes_before`` minutes of training behind it; the total sums the last value of every session."""
    sessions: list[tuple[int, float]] = []
    total, last, last_step = 0.0, None, -1
    for rec in stats:
        t = rec.get("time/minutes")
        if not isinstance(t, (int, float)):
            continue
        if last is None or t < last:  # a new session began
            total += last or 0.0
            sessions.append((last_step if last is not None else -1, total))
        last, last_step = float(t), rec.get("step", last_step)
    return sessions, total + (last or 0.0)


def training_minutes(stats: list[dict]) -> float:
    """Wall-clock training minutes over all sessions of a run (see ``training_clock``)."""
    return training_clock(stats)[1]


def train_val_curve(run: Path) -> list[dict]:
    """The periodic fast-probe evaluations of a run (``metrics.jsonl``) by step: step, minutes of training behind
    it over all sessions (each record's ``minutes`` counts from its session's start; the offsets come from
    ``stats.jsonl``; None when not recorded) and the train_val top-1 (a fraction, as recorded)."""
    sessions, _ = training_clock(read_jsonl(run / "stats.jsonl"))
    out = []
    for r in read_jsonl(run / "metrics.jsonl"):
        if "train_val_top1" not in r:
            continue
        minutes = r.get("minutes")
        if minutes is not None:
            minutes += max((before for after, before in sessions if after < r["step"]), default=0.0)
        out.append({"step": r["step"], "minutes": minutes, "train_val_top1": r["train_val_top1"]})
    return sorted(out, key=lambda p: p["step"])


def duration(minutes: float) -> str:
    if minutes < 1:
        return f"{60 * minutes:.0f} s"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


KNN_RE = re.compile(r"^knn_d(\d+)_k(\d+)_top([15])$")
PROBES = (("linear", "linear probe (fast)"), ("linear_sweep", "linear probe (lr sweep, train_val selection)"),
          ("linear_paper", "linear probe (Table 1 protocol, augmented)"))
PROBE_FIELDS = (("top1", "top-1"), ("top5", "top-5"), ("train_val_top1", "train_val top-1"), ("lr", "lr"),
                ("step", "selected step"))
GENERATION = ("fid", "kid", "kid_std", "is", "is_std", "fid_samples")
RECONSTRUCTION = ("rel_l1", "recon_samples")
HEADLINE = (("linear_avepool_top1", "linear probe top-1 (AvePool)"),
            ("linear_bn_crelu_top1", "linear probe top-1 (BN+CReLU)"),
            ("knn_d1_k25_top1", "k-NN top-1 (k=25, D1)"), ("fid", "FID"), ("rel_l1", "relative L1 reconstruction"))


def knn_table(res: dict) -> tuple[str, set[str]]:
    """The k-NN results (App. C, Table 6) as one row per k and a top-1 / top-5 column per distance. Top-5 at
    k=1 is left out: one neighbour votes for one label, so it equals top-1."""
    found = {}
    for key, v in res.items():
        if (m := KNN_RE.match(key)) and isinstance(v, (int, float)):
            found[(int(m.group(1)), int(m.group(2)), int(m.group(3)))] = (key, v)
    if not found:
        return "", set()
    ps = sorted({p for p, _, _ in found})
    ks = sorted({k for _, k, _ in found})
    header = ["k"] + [f"D{p} top-{t}" for p in ps for t in (1, 5)]
    rows = []
    for k in ks:
        cells = [f"<td>{k}</td>"]
        for p in ps:
            for t in (1, 5):
                hit = found.get((p, k, t))
                if hit is None or (k == 1 and t == 5):
                    cells.append('<td title="top-5 of 1 neighbour equals top-1">—</td>' if k == 1 and t == 5
                                 else "<td></td>")
                else:
                    cells.append(_cell(*hit))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(header, rows), {key for key, _ in found.values()}


def probe_table(res: dict) -> tuple[str, set[str]]:
    """One row per linear probe (protocol x feature), columns top-1, top-5, train_val top-1, lr, step."""
    rows, used = [], set()
    for tag, label in PROBES:
        for feat, feat_label in (("avepool", "AvePool"), ("bn_crelu", "BN+CReLU")):
            keys = {f: f"{tag}_{feat}_{f}" for f, _ in PROBE_FIELDS}
            if keys["top1"] not in res:
                continue
            cells = [f"<td>{html.escape(label)}, {feat_label}</td>"]
            for f, _ in PROBE_FIELDS:
                k = keys[f]
                cells.append(_cell(k, res[k]) if res.get(k) is not None else "<td></td>")
                used.add(k)
            rows.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        return "", used
    return _table(["probe"] + [h for _, h in PROBE_FIELDS], rows), used


LABELS = {"fid": "FID", "kid": "KID", "kid_std": "KID std", "is": "Inception Score", "is_std": "IS std",
          "fid_samples": "images per side", "rel_l1": "relative L1 error of G(E(x)) (App. B)",
          "recon_samples": "images"}


def _key_rows(res: dict, keys) -> tuple[str, set[str]]:
    rows = [f"<tr><td>{html.escape(LABELS.get(k, k))}</td>{_cell(k, res[k])}</tr>" for k in keys if k in res]
    return (_table(["metric", "value"], rows) if rows else ""), {k for k in keys if k in res}


def metric_sections(res: dict) -> str:
    """eval.json grouped: representation (probes, k-NN), generation, reconstruction, then anything else."""
    parts, used = [], {"checkpoint", "run_dir", "step", "scale", "variant", "split", "timings_s", "note"}
    probes, u1 = probe_table(res)
    knn, u2 = knn_table(res)
    used |= u1 | u2
    if probes or knn or "feature_dim" in res:
        dim = f" ({res['feature_dim']}-d AvePool feature)" if "feature_dim" in res else ""
        used.add("feature_dim")
        parts.append(f"<h3>Representation{dim}</h3>{probes}")
        if knn:
            parts.append(f"<p>k-nearest neighbours (App. C), test accuracy by k and distance:</p>{knn}")
    for title, keys in (("Generation", GENERATION), ("Reconstruction", RECONSTRUCTION)):
        table, u = _key_rows(res, keys)
        used |= u
        if table:
            parts.append(f"<h3>{title}</h3>{table}")
    rest = [k for k, v in res.items() if k not in used and isinstance(v, (int, float, str))
            and not isinstance(v, bool)]
    table, _ = _key_rows(res, rest)
    if table:
        parts.append(f"<h3>Other</h3>{table}")
    if isinstance(res.get("timings_s"), dict) and res["timings_s"]:
        t = ", ".join(f"{html.escape(k)} {v:.0f} s" for k, v in res["timings_s"].items())
        parts.append(f"<p class='note'>evaluation time: {t}</p>")
    if res.get("note"):
        parts.append(f"<p class='note'>{html.escape(str(res['note']))}</p>")
    return "".join(parts)


def stale_eval(run: Path, res: dict) -> str | None:
    """Why eval.json does not describe the latest checkpoint, or None when it does."""
    ckpts = list_checkpoints(run)
    if not ckpts:
        return None
    step, path = ckpts[-1]
    evaluated = res.get("step")
    if isinstance(evaluated, int) and evaluated < step:
        return f"eval.json is of step {evaluated}, older than the latest checkpoint (step {step})"
    if (run / "eval.json").stat().st_mtime < path.stat().st_mtime and evaluated != step:
        return f"eval.json was written before the latest checkpoint ({path.name})"
    return None


def summary_section(run: Path, res: dict | None, stats: list[dict]) -> str:
    """What was trained (scale, variant, data, iterations, wall time) and the headline figures, beside the
    baselines of RUN_DIR/baselines.json ({name: {eval.json key: value}}) when the run has them."""
    cfg = load_yaml(run / "config.yaml")
    m, o = cfg.model, cfg.optim
    ckpts = list_checkpoints(run)
    iters = ckpts[-1][0] if ckpts else None
    e = f"{m.encoder.arch} {tuple(m.encoder.blocks)} x{m.encoder.width} at {m.e_resolution}px" \
        if m.encoder.arch != "none" else "none (GAN)"
    data = cfg.data.source + (f" ({cfg.data.data_dir})" if cfg.data.data_dir else "")
    minutes = training_minutes(stats)
    trained = (f"{iters:,} iterations" if iters is not None else "no checkpoint yet") + (
        f" in {duration(minutes)} of wall time" if minutes else "")
    model = f"{cfg.scale} / {cfg.variant}: G {m.resolution}px ch {m.generator.ch}, E {e}, z {m.z_dim}-d {m.prior}"
    facts = [("model", model),
             ("data", f"{data}, {m.channels} channel(s), augmentation {cfg.data.augment}"),
             ("training", f"{trained}; batch {o.batch_size}, {cfg.train.precision}")]
    if res is not None:
        ckpt = Path(str(res.get("checkpoint", "?"))).name
        facts.append(("evaluated", f"{ckpt} (step {res.get('step', '?')}), {res.get('split', 'test')} split"))
    rows = [f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in facts]
    parts = ["<h2>Summary</h2>", f"<table class='facts'>{''.join(rows)}</table>"]
    if res is not None:
        baselines = {}
        if (run / "baselines.json").is_file():
            baselines = {k: v for k, v in json.loads((run / "baselines.json").read_text()).items()
                         if isinstance(v, dict)}
        heads = [(k, label) for k, label in HEADLINE if k in res]
        if heads:
            header = ["", "this run", *baselines]
            body = []
            for k, label in heads:
                cells = [f"<td>{html.escape(label)}</td>", _cell(k, res[k])]
                cells += [_cell(k, b[k]) if b.get(k) is not None else "<td></td>" for b in baselines.values()]
                body.append(f"<tr>{''.join(cells)}</tr>")
            parts.append(_table(header, body))
            if "fid" in res and "fid_samples" in res:
                parts.append(f"<p class='note'>FID with {res['fid_samples']:,} images per side.</p>")
        warn = stale_eval(run, res)
        if warn:
            parts.append(f"<p class='warning'>Warning: {html.escape(warn)}; rerun <code>bigbigan eval "
                         f"{html.escape(str(run))}</code>.</p>")
    return "".join(parts)


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
    res = json.loads(eval_json.read_text()) if eval_json.is_file() else None
    stats = read_jsonl(run / "stats.jsonl")
    parts.append(summary_section(run, res, stats))
    if res is not None:
        parts += ["<h2>Evaluation (EMA models)</h2>", metric_sections(res)]
    else:
        parts.append("<p>No evaluation yet: run <code>bigbigan eval RUN_DIR</code>.</p>")

    figures = []
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
             "pre{background:#f6f6f6;padding:8px;overflow-x:auto}"
             "table.facts th{text-align:left;background:#f6f6f6}td[title]{font-variant-numeric:tabular-nums}"
             ".warning{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px}.note{color:#555}"
             "table{margin-bottom:0.8em}")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>bigbigan report</title>"
                   f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return out
