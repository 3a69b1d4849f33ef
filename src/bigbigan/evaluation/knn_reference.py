"""k-nearest-neighbour classification as Appendix C defines it, written for clarity: the reference that
``knn``'s chunked search and fast kernels must reproduce (the tests' oracle).

Distance: D_p(a, b) = || a/||a||_p - b/||b||_p ||_p for p in {1, 2} (D_2 is a cosine distance).
Prediction: majority vote among the k nearest training points; a tie between several labels with the same
top count is broken by the label of the nearest neighbour among the neighbours carrying a tied label.
Everything here is float64 and quadratic in memory: for small sets only.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-12


def normalize_p(a: Tensor, p: int) -> Tensor:
    """Row-wise a / ||a||_p (App. C); rows of zeros stay zero instead of becoming NaN."""
    return a / a.norm(p=p, dim=1, keepdim=True).clamp_min(_EPS)


def reference_topk(train_features: Tensor, train_labels: Tensor, query_features: Tensor, k: int, p: int = 1,
                   topk: int = 5) -> Tensor:
    """Labels ranked by votes among the k nearest training rows under D_p, ties by the nearest tied
    neighbour; [Q, topk] with -1 where fewer labels got a vote. Equal distances: the lower training index first."""
    d = torch.cdist(normalize_p(query_features.double(), p), normalize_p(train_features.double(), p), p=float(p))
    out = []
    for row in d:
        order = row.argsort(stable=True)[:k].tolist()
        counts: dict[int, int] = {}
        first: dict[int, int] = {}
        for pos, j in enumerate(order):
            label = int(train_labels[j])
            counts[label] = counts.get(label, 0) + 1
            first.setdefault(label, pos)
        ranked = sorted(counts, key=lambda label: (-counts[label], first[label]))[:topk]
        out.append(ranked + [-1] * (topk - len(ranked)))
    return torch.tensor(out, dtype=torch.long).reshape(len(out), topk)
