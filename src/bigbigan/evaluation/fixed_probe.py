"""A small fixed linear-probe check of a model: the figure a shipped export records and its test re-measures.

Protocol (recorded with the figure, so the check re-runs exactly what produced it): a class-stratified seeded
sample of ``train_per_class`` images per class from the official training split and ``test_per_class`` per
class from the test split (Fashion-MNIST: 200 + 100, i.e. 2K training images and a fixed 1K test subset, which
keeps the check of a shipped model near a minute on 2 CPU cores); AvePool features through
``BigBiGAN.encode`` (the evaluation preprocessing); the Table 1 probe of App. A (zero init, Adam, EMA of the
weights) for ``steps`` steps at ``lr``, reported at its last step (no selection).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..data import open_source
from .linear_probe import train_linear_probe


@dataclass(frozen=True)
class ProbeProtocol:
    data: str = "fashion-mnist"
    data_dir: str | None = None
    train_per_class: int = 200
    test_per_class: int = 100  # 10 classes: a 1K test subset
    seed: int = 0
    steps: int = 1000
    lr: float = 0.01
    batch_size: int = 256
    feature: str = "avepool"

    def to_dict(self) -> dict:
        return asdict(self)


def stratified_subset(labels: Tensor, per_class: int, seed: int) -> Tensor:
    """Sorted indices [K * per_class] of ``per_class`` items of every class, each class's drawn by a permutation
    from one generator seeded with ``seed`` (classes in label order). Fewer when a class has fewer items."""
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero()[:, 0]
        picked.append(idx[torch.randperm(idx.numel(), generator=gen)[:per_class]])
    return torch.cat(picked).sort().values


def fixed_probe(model, protocol: ProbeProtocol, *, progress: bool = False) -> dict:
    """Top-1 / top-5 (fractions) of the fixed probe of ``model`` (a ``bigbigan.model.BigBiGAN``)."""
    feats = {}
    for split, per_class in (("train", protocol.train_per_class), ("test", protocol.test_per_class)):
        source = open_source(protocol.data, protocol.data_dir, split)
        tensors = source.as_tensors()
        labels = tensors[1] if tensors is not None else torch.tensor([source[i][1] for i in range(len(source))])
        idx = stratified_subset(labels, per_class, protocol.seed)
        images = tensors[0][idx] if tensors is not None else [source[int(i)][0] for i in idx]
        feats[split] = (model.encode(images, protocol.feature, progress=progress), labels[idx])
    (tr_f, tr_y), (te_f, te_y) = feats["train"], feats["test"]
    r = train_linear_probe(tr_f, tr_y, te_f, te_y, num_classes=int(tr_y.max()) + 1, steps=protocol.steps,
                           lr=protocol.lr, batch_size=protocol.batch_size, seed=protocol.seed)
    return {"top1": r.top1, "top5": r.top5, "train_images": int(tr_y.numel()), "test_images": int(te_y.numel())}
