"""Fréchet distance in the feature space of a small Fashion-MNIST classifier: a cheap second measure beside FID.

    python benchmarks/classifier_fd.py train                         # once: trains and saves the classifier
    python benchmarks/classifier_fd.py score RUN [RUN ...] --samples 10000

The Inception FID of 10K samples costs about half an hour of the 2 CPU cores (299 px Inception at ~7-13
images/s); this measure costs seconds, so it can use many samples for every seed of an ablation, where FID
at 1-2K samples is biased and noisy. It is not comparable with FID or with figures of other papers: it is a
within-project yardstick, reported beside the Inception figures, never instead of them.

``train``: a 5-conv network (BN, ReLU, 32-64-128 channels, 128-d penultimate layer) trained with labels on the
Fashion-MNIST training split at 32 px (``--steps`` Adam steps, batch 128, horizontal flips), seeded; saved as
safetensors (``benchmarks/results/fashion_mnist_classifier.safetensors``) with a JSON record of its test accuracy
and the command beside it.

``score``: for each run (anything ``bigbigan.load`` takes), ``--samples`` EMA samples (seed 0) against as many
training images (a seeded class-stratified sample): the Fréchet distance of the 128-d penultimate features
("CFD") and the KID on them (mean and standard error over subsets). The floor of the measure, the same
distances between as many training and test images, is printed with it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import bigbigan
from bigbigan.data import load_eval_tensors, open_source
from bigbigan.data.subset import subset_source
from bigbigan.evaluation.fid import feature_stats, frechet_distance, kid

ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "results" / "fashion_mnist_classifier.safetensors"


class SmallClassifier(nn.Module):
    """32 px images in [-1, 1] -> 128-d features -> 10 logits."""

    def __init__(self, channels: int = 1, classes: int = 10, feature_dim: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.trunk = nn.Sequential(*block(channels, 32), *block(32, 32), nn.MaxPool2d(2),  # 16 px
                                   *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 8 px
                                   *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.Linear(128, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, classes)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


@torch.no_grad()
def features(net: SmallClassifier, x: Tensor, batch: int = 1000) -> Tensor:
    net.eval()
    return torch.cat([net.features(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def split_tensors(split: str, n: int | None = None) -> tuple[Tensor, Tensor]:
    src = open_source("fashion-mnist", None, split)
    if n is not None:
        src = subset_source(src, n, seed=0)
    return load_eval_tensors(src, resolution=32, channels=1)


def train(args) -> int:
    torch.manual_seed(args.seed)
    x, y = split_tensors("train")
    xt, yt = split_tensors("test")
    net = SmallClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.monotonic()
    net.train()
    for step in range(args.steps):
        idx = torch.randint(0, x.shape[0], (128,), generator=gen)
        xb = x[idx]
        flip = torch.rand(128, generator=gen) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        loss = nn.functional.cross_entropy(net(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"\rstep {step}/{args.steps} loss {loss.item():.3f}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    net.eval()
    with torch.no_grad():
        acc = sum((net(xt[i : i + 1000]).argmax(1) == yt[i : i + 1000]).sum().item()
                  for i in range(0, xt.shape[0], 1000)) / xt.shape[0]
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(WEIGHTS))
    rec = {"test_top1": acc, "steps": args.steps, "batch": 128, "seed": args.seed,
           "train_minutes": (time.monotonic() - t0) / 60, "date": datetime.date.today().isoformat(),
           "command": "python benchmarks/classifier_fd.py " + " ".join(sys.argv[1:])}
    WEIGHTS.with_suffix(".json").write_text(json.dumps(rec, indent=2) + "\n")
    print(f"test top-1 {acc:.4f}; saved {WEIGHTS}")
    return 0


def load_classifier() -> SmallClassifier:
    if not WEIGHTS.is_file():
        raise SystemExit(f"classifier_fd: {WEIGHTS} not found: run `python benchmarks/classifier_fd.py train` first")
    net = SmallClassifier()
    net.load_state_dict(load_file(str(WEIGHTS)))
    return net.eval()


def distances(f_ref: Tensor, f_other: Tensor) -> dict:
    k_mean, k_std = kid(f_ref, f_other)
    return {"cfd": frechet_distance(*feature_stats(f_ref), *feature_stats(f_other)), "ckid": k_mean, "ckid_std": k_std}


def score(args) -> int:
    net = load_classifier()
    n = args.samples
    f_train = features(net, split_tensors("train", n)[0])
    floor = distances(f_train, features(net, split_tensors("test", n)[0]))
    print(f"floor, train {n} vs test {n}: CFD {floor['cfd']:.3f}, KID {floor['ckid']:.5f} ± {floor['ckid_std']:.5f}")
    out = {"samples": n, "floor_train_vs_test": floor, "runs": {}}
    for run in args.runs:
        t0 = time.monotonic()
        model = bigbigan.load(run)
        rec = distances(f_train, features(net, model.sample(n, seed=0)))
        rec["seconds"] = time.monotonic() - t0
        out["runs"][run] = rec
        print(f"{run}: CFD {rec['cfd']:.3f}, KID {rec['ckid']:.5f} ± {rec['ckid_std']:.5f} ({rec['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and save the classifier")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score", help="CFD / KID of runs' EMA samples against training images")
    s.add_argument("runs", nargs="+")
    s.add_argument("--samples", type=int, default=10000)
    s.add_argument("--json")
    args = p.parse_args(argv)
    return train(args) if args.cmd == "train" else score(args)


if __name__ == "__main__":
    sys.exit(main())
