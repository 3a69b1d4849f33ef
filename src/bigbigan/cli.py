"""Command line: the only place that turns argv into a configuration.

    bigbigan presets [--params SCALE VARIANT]
    bigbigan train --scale S --variant V --data SOURCE [--data-dir P] --out RUN_DIR [--steps N | --minutes M]
    bigbigan eval RUN_DIR_OR_CHECKPOINT --metrics linear,knn,fid,kid,is,recon [--json OUT]
    bigbigan report RUN_DIR
    bigbigan ablate --scale S --variants a,b,c --seeds N --minutes M
    bigbigan export RUN_DIR --out DIR
    bigbigan encode MODEL --images DIR | --data NAME [--split S] --out FILE.npy|.safetensors|.csv
    bigbigan sample MODEL -n 64 --out grid.png|DIR
    bigbigan reconstruct MODEL IMAGES... --out grid.png
    bigbigan neighbours MODEL QUERY... --index DIR [--out grid.png]

User mistakes end in one line on stderr (exit status 2); programming errors keep their traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

import torch

from . import dist as bdist
from . import presets
from .ablate import ablate_cli
from .checkpoint import CheckpointError
from .commands import encode_cmd, export_cmd, neighbours_cmd, reconstruct_cmd, sample_cmd
from .config import ConfigError, apply_overrides, option_overrides, validate
from .data import DataError
from .evaluation.inception import FEATURE_PRECISIONS, InceptionUnavailable
from .evaluation.report import write_report
from .evaluation.run import evaluate_cli
from .nets import build_models
from .rundir import RunDirError
from .runtime import tune_allocator, warn_if_contended
from .train.loop import TrainingError
from .train.run import check_resumable, saved_config
from .workflows import train

# Mistakes of the user (bad configuration, data, checkpoint or run directory, a diverged run): one line, status 2.
USER_ERRORS = (ConfigError, DataError, CheckpointError, TrainingError, RunDirError, InceptionUnavailable)


# ---- presets --------------------------------------------------------------------------------------------------


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def param_counts(cfg) -> dict[str, int]:
    """Parameter counts of G, D (F, H, J, heads) and E, built on the meta device (no weights allocated)."""
    with torch.device("meta"):
        G, D, E = build_models(cfg)
    heads = sum(_count(h) for h in (D.theta_x, D.theta_z, D.theta_xz))
    counts = {"G": _count(G), "D": _count(D), "D.F": _count(D.F), "D.H": _count(D.H), "D.J": _count(D.J),
              "D.heads": heads, "E": _count(E)}
    if E is not None:
        counts["E.trunk"] = _count(E.stem) + _count(E.trunk) + _count(E.out_bn)
        counts["E.head"] = _count(E.head) + _count(E.out)
    return counts


def cmd_presets(args: argparse.Namespace) -> int:
    if args.params:
        scale, variant = args.params
        cfg = presets.resolve(scale, variant, args.set)
        m = cfg.model
        print(f"{scale} / {variant}: G {m.resolution}px ch {m.generator.ch}, E {m.encoder.arch} "
              f"blocks {tuple(m.encoder.blocks)} x{m.encoder.width} at {m.e_resolution}px, terms "
              f"{','.join(cfg.objective.terms)}")
        for name, n in param_counts(cfg).items():
            print(f"  {name:<8} {n / 1e6:10.3f} M")
        return 0
    print("scales:")
    for name, (desc, _) in presets.SCALES.items():
        print(f"  {name:<26} {desc}")
    print("variants (Table 1 rows, then Table 3's light augmentation and footnote 1's single hinge):")
    for name, (desc, _) in presets.VARIANTS.items():
        print(f"  {name:<26} {desc}")
    return 0


# ---- train ----------------------------------------------------------------------------------------------------


def _train_config(args: argparse.Namespace):
    sets = option_overrides(args.set, data=args.data, data_dir=args.data_dir, steps=args.steps,
                            minutes=args.minutes, precision=args.precision, seed=args.seed)
    saved = saved_config(args.out)
    explicit = args.scale is not None or args.variant is not None or any(
        not s.startswith("train.") for s in sets
    )
    if saved is not None and not explicit:  # resume with the run's own settings
        return validate(apply_overrides(saved, sets))
    cfg = presets.resolve(args.scale or "small32", args.variant or "base", sets)
    if saved is not None:
        check_resumable(saved, cfg)
    return cfg


def check_device(name: str | None) -> None:
    """Refuse an unknown device name, or CUDA on a machine without a GPU, before anything is loaded."""
    if name is None:
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r} is not a device; use cpu or cuda (cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for a GPU, but torch sees no CUDA device here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name!r} is not supported; use cpu or cuda")


# Exit statuses after a signal stop (the checkpoint is saved first): the shell's 128 + signal number, so a
# scheduler sees that the run was interrupted, not finished.
SIGNAL_EXIT = {"SIGTERM": 143, "SIGINT": 130}


def cmd_train(args: argparse.Namespace) -> int:
    check_device(args.device)
    tune_allocator()
    warn_if_contended()
    cfg = _train_config(args)
    summary = train(cfg, args.out, device=args.device, progress=not args.no_progress)
    if bdist.launched_as_main():  # under torchrun, once
        print(f"run directory: {args.out} (config.yaml, checkpoints/, images/, stats.jsonl, tb/, ema.safetensors)")
    if summary["stopped_by"] in SIGNAL_EXIT:
        return SIGNAL_EXIT[summary["stopped_by"]]
    return 0 if summary["stopped_by"] in ("steps", "minutes") else 1


# ---- eval / report / ablate ---------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_device(args.device)
    tune_allocator()
    warn_if_contended()
    return evaluate_cli(args)


def cmd_report(args: argparse.Namespace) -> int:
    path = write_report(args.run_dir, out=args.out)
    print(f"report: {path}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    tune_allocator()
    warn_if_contended()
    return ablate_cli(args)


# ---- the model as a tool: export, encode, sample, reconstruct, neighbours -------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    return export_cmd(args)


def cmd_encode(args: argparse.Namespace) -> int:
    return encode_cmd(args)


def cmd_sample(args: argparse.Namespace) -> int:
    return sample_cmd(args)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    return reconstruct_cmd(args)


def cmd_neighbours(args: argparse.Namespace) -> int:
    return neighbours_cmd(args)


def add_tool_parsers(sub) -> None:
    """Register export, encode, sample, reconstruct and neighbours (MODEL: anything ``bigbigan.load`` takes)."""

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="run directory, checkpoint, exported directory or shipped model name")
        p.add_argument("--checkpoint", choices=["latest", "best"], default="latest",
                       help="which checkpoint of a run directory (default latest)")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    xp = sub.add_parser("export", help="export a run's EMA G and E as config.json + model.safetensors",
                        description="Write the EMA G and E of a run (with the training-feature statistics for "
                        "BN+CReLU) in the Hugging Face layout that bigbigan.load reads.")
    xp.add_argument("run", help="run directory or checkpoint file")
    xp.add_argument("--out", required=True, help="output directory")
    xp.add_argument("--checkpoint", choices=["latest", "best"], default="latest", help="which checkpoint")
    xp.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                    help="storage type of the weights (loaded back as float32; default %(default)s)")
    xp.add_argument("--stats-images", type=int, default=10000,
                    help="training images for the BN+CReLU feature statistics; 0: none (default %(default)s)")
    xp.add_argument("--data-dir", help="where the run's training data lives now (for the standing BN statistics "
                    "and the feature statistics)")
    xp.add_argument("--standing-stats-batches", type=int,
                    help="batches of the standing BN statistics pass for EMA G and E (default: the run's "
                    "eval.standing_stats_batches; 0: keep the copied statistics)")
    xp.add_argument("--device", help="cpu or cuda (default cpu)")
    xp.set_defaults(func=cmd_export)

    enc = sub.add_parser("encode", help="encoder features of images (a folder or a data set) to a file")
    model_args(enc)
    src = enc.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="a folder of images (class sub-folders give labels, else -1)")
    src.add_argument("--data", help="a data source: fashion-mnist, mnist, digits, folder, cifar10, shards")
    enc.add_argument("--data-dir", help="where --data lives (default: the source's standard location)")
    enc.add_argument("--split", default="test", help="split of --data: train, test, ... (default test)")
    enc.add_argument("--feature", choices=["avepool", "bn_crelu", "z"], default="avepool",
                     help="AvePool [F], BN+CReLU [2F] or E's mean latent [z_dim] (default avepool)")
    enc.add_argument("--out", required=True, help="output: .npy (structured), .safetensors or .csv")
    enc.add_argument("--batch-size", type=int, default=256)
    enc.set_defaults(func=cmd_encode)

    smp = sub.add_parser("sample", help="images from the EMA generator, as a grid or one PNG each")
    model_args(smp)
    smp.add_argument("-n", type=int, default=64, help="how many images (default 64)")
    smp.add_argument("--seed", type=int, default=0, help="latent seed: the same seed gives the same images")
    smp.add_argument("--nrow", type=int, help="images per grid row (default: a square)")
    smp.add_argument("--out", required=True, help="grid.png, or a directory for sample-00000.png, ...")
    smp.set_defaults(func=cmd_sample)

    rec = sub.add_parser("reconstruct", help="G(E(x)) of images: a grid with inputs above reconstructions")
    model_args(rec)
    rec.add_argument("images", nargs="+", help="image files or folders")
    rec.add_argument("--out", required=True, help="output grid (PNG)")
    rec.add_argument("--ncol", type=int, default=8, help="images per row (default 8)")
    rec.set_defaults(func=cmd_reconstruct)

    nb = sub.add_parser("neighbours", help="nearest images in a folder by the paper's D1 distance (App. C)")
    model_args(nb)
    nb.add_argument("query", nargs="+", help="query image files or folders")
    nb.add_argument("--index", required=True, help="folder of images to search")
    nb.add_argument("-k", type=int, default=8, help="neighbours per query (default 8)")
    nb.add_argument("-p", type=int, choices=[1, 2], default=1, help="distance D_p (default 1, the paper's D1)")
    nb.add_argument("--out", help="write a grid: each query followed by its neighbours")
    nb.set_defaults(func=cmd_neighbours)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bigbigan", description="BigBiGAN: train, evaluate and ablate.")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("presets", help="list scales and variants, or count parameters of one")
    sp.add_argument("--params", nargs=2, metavar=("SCALE", "VARIANT"), help="print parameter counts (meta device)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    sp.set_defaults(func=cmd_presets)

    tp = sub.add_parser("train", help="train (or resume) a run",
                        description="Train BigBiGAN in RUN_DIR; an existing RUN_DIR resumes from its latest checkpoint.")
    tp.add_argument("--scale", choices=list(presets.SCALES), help="model/budget size (default small32)")
    tp.add_argument("--variant", choices=list(presets.VARIANTS), help="Table 1 row (default base)")
    tp.add_argument("--data", help="data source: fashion-mnist, mnist, digits, folder, cifar10, shards")
    tp.add_argument("--data-dir", help="where the data lives (default: the source's standard location)")
    tp.add_argument("--out", required=True, help="run directory (config, checkpoints, logs, pictures)")
    tp.add_argument("--steps", type=int, help="total iterations of the run (resuming continues up to it)")
    tp.add_argument("--minutes", type=float, help="stop after this many minutes of training (then checkpoint)")
    tp.add_argument("--precision", choices=["fp32", "bf16"],
                    help="bf16 autocast or fp32 (default); on a CPU, bf16 pays only with bf16 instructions "
                    "(AVX-512 BF16, AMX): elsewhere it is emulated, ~10x slower (bigbigan warns)")
    tp.add_argument("--seed", type=int, help="random seed (weights, noise, data order)")
    tp.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    tp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any config field, e.g. --set optim.lr_g=2e-4 (repeatable)")
    tp.add_argument("--no-progress", action="store_true", help="no progress bar")
    tp.set_defaults(func=cmd_train)

    ep = sub.add_parser("eval", help="evaluate a run or checkpoint (EMA models)")
    ep.add_argument("target", help="run directory, checkpoint file, exported directory (bigbigan export) or the "
                    "name of a shipped model (e.g. fashion-mnist; results go to ./eval-NAME)")
    ep.add_argument("--metrics", default="linear,knn,fid,kid,recon",
                    help="comma list of linear (fast probe on cached features), linear-sweep (lr sweep, train_val selection), linear-paper (Table 1 protocol with augmentation), knn, fid, kid, is, recon (default: %(default)s)")
    ep.add_argument("--json", help="write the results as JSON to this file (default RUN_DIR/eval.json)")
    ep.add_argument("--checkpoint", choices=["latest", "best"], default="latest", help="which checkpoint of a run")
    ep.add_argument("--split", default="test", help="query split: test or train_val (default test)")
    ep.add_argument("--fid-samples", type=int, default=10000, help="images per side for FID/KID/IS (default 10000)")
    ep.add_argument("--probe-steps", type=int, default=5000, help="linear probe Adam steps (default 5000)")
    ep.add_argument("--feature", choices=["avepool", "bn-crelu", "both"], default="both",
                    help="linear probe feature (default both)")
    ep.add_argument("--train-limit", type=int,
                    help="train probes on this many training images, a seeded class-stratified sample (quick checks)")
    ep.add_argument("--subset-seed", type=int, default=0,
                    help="seed of every evaluation subset (--train-limit, FID references, reconstructions, picture "
                         "queries); written to the JSON as subset_seed (default %(default)s)")
    ep.add_argument("--inception-weights", help="1008-class Inception weights (pt_inception-2015-12-05) for IS")
    ep.add_argument("--inception-precision", choices=list(FEATURE_PRECISIONS),
                    help="how the FID/KID Inception runs: fp32 (the TorchScript as shipped), fp32-eager (same "
                    "weights, BN folded, channels_last), bf16 (eager under bf16 autocast; FID ~1%% off), "
                    "*-compiled (torch.compile of the eager graph: ~30 s once, then faster; for 10K FIDs); "
                    "speeds in BENCHMARKS.md (default fp32)")
    ep.add_argument("--data-dir", help="override the run's data directory")
    ep.add_argument("--device", help="cpu or cuda")
    ep.add_argument("--standing-stats-batches", type=int, metavar="N",
                    help="BN statistics of EMA G and E re-estimated over N seeded batches (standing statistics); "
                         "0: the EMA's copied running statistics (default: the run's eval.standing_stats_batches)")
    ep.set_defaults(func=cmd_evaluate)

    rp = sub.add_parser("report", help="write a self-contained HTML report of a run")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="output HTML path (default RUN_DIR/report/index.html)")
    rp.set_defaults(func=cmd_report)

    ap = sub.add_parser("ablate", help="train and evaluate variants x seeds; print Table 1's form")
    ap.add_argument("--scale", default="small32", choices=list(presets.SCALES))
    ap.add_argument("--variants", default="base,no-unaries", help="comma list of variants")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per variant")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="run seeds FIRST .. FIRST+SEEDS-1 (default 0): more seeds for an ablation whose earlier "
                         "seeds were run before")
    ap.add_argument("--minutes", type=float, help="training minutes per run")
    ap.add_argument("--steps", type=int, help="training iterations per run")
    ap.add_argument("--out", default="runs/ablate", help="directory holding one run per variant x seed")
    ap.add_argument("--fid-samples", type=int, default=2000, help="images per side for FID (default 2000)")
    ap.add_argument("--probe-steps", type=int, default=5000, help="linear probe Adam steps (default 5000)")
    ap.add_argument("--protocol", default="fast",
                    help="fast (last checkpoint, probe on cached unaugmented features, Cls. on test) or paper "
                         "(Table 1: periodic train_val probe, best checkpoint, augmented probe, Cls. on train_val "
                         "plus a test column) (default %(default)s)")
    ap.add_argument("--eval-every", type=int,
                    help="--protocol paper: steps between train_val evaluations (default a tenth of --steps, "
                         "else the scale's train.eval_every)")
    ap.add_argument("--inception-weights", help="1008-class Inception weights for IS")
    ap.add_argument("--inception-precision", choices=list(FEATURE_PRECISIONS),
                    help="how the FID Inception runs (as for eval; bf16: ~2.6x faster, FID ~1%% off, the same "
                         "for every row) (default fp32)")
    ap.add_argument("--data", help="data source override")
    ap.add_argument("--data-dir")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs trained and evaluated at a time, each a process with its share of the threads "
                         "(default 1; 2 on a 2-core CPU: more iterations per second in all, BENCHMARKS.md)")
    ap.add_argument("--cell", help=argparse.SUPPRESS)  # VARIANT:SEED: run only that one (--jobs's worker)
    ap.set_defaults(func=cmd_ablate)
    add_tool_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `ablate --jobs` starts its workers with these
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is reported below and not at interpreter exit
        return status
    except USER_ERRORS as exc:
        print(f"bigbigan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bigbigan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bigbigan presets | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 141
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"bigbigan: error: {exc.strerror}{where}", file=sys.stderr)
        return 2


# OSErrors that are the machine's state, not a bug: a full disk, a read-only or forbidden path.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                       errno.EISDIR}


if __name__ == "__main__":
    sys.exit(main())
