"""k-nearest-neighbour classification on frozen features (paper App. C).

Distance: D_p(a, b) = || a/||a||_p - b/||b||_p ||_p for p in {1, 2} (D_2 is a cosine distance).
Prediction: majority vote among the k nearest training points; a tie between several labels with the same
top count is broken by the label of the nearest neighbour among the neighbours carrying a tied label.

Everything is batched tensor code, chunked over queries and over the training set so that memory stays
bounded (ImageNet-sized sets fit a GPU); tensors stay on the device of the inputs.
- D_2 uses the matmul form ||a||^2 + ||b||^2 - 2 a.b on the normalised features.
- D_1 on CPU uses a register-tiled numba kernel when numba is installed (about 40 G |a_i - b_i| terms/s on
  2 cores, against 2 G for ``torch.cdist(p=1)``), else a chunked broadcasting torch formulation (about
  5 G terms/s); on other devices ``torch.cdist(p=1)``. All are exact up to fp32 rounding.
Exactly equal distances are ordered by ``torch.topk`` at the chunk boundaries and by training index in the
final list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

_EPS = 1e-12
_VOTE_CHUNK = 4096


def normalize_p(a: Tensor, p: int) -> Tensor:
    """Row-wise a / ||a||_p (App. C); rows of zeros stay zero instead of becoming NaN."""
    return a / a.norm(p=p, dim=1, keepdim=True).clamp_min(_EPS)


# ---------------------------------------------------------------------------------------------------------
# Pairwise distances of already normalised rows.


_prange = range  # numba.prange once the kernel is compiled (numba is imported lazily, and only if present)


def _l1_block_py(A, B, out):  # A [Q, d], B [N, d] -> out [Q, N]; compiled by numba
    """Parallel L1 distances: blocks of 32 queries (256 KiB at d=2048, stays in L2) per thread while
    train rows stream past in pairs; 4 query x 2 train tiles keep 8 accumulators in registers and the
    loop over dimensions vectorises (fastmath permits the reassociation)."""
    n_q, d = A.shape
    n_b = B.shape[0]
    qb = 32
    for blk in _prange((n_q + qb - 1) // qb):
        q0 = blk * qb
        q1 = min(q0 + qb, n_q)
        for j in range(0, n_b - 1, 2):
            b0 = B[j]
            b1 = B[j + 1]
            i = q0
            while i + 4 <= q1:
                a0 = A[i]
                a1 = A[i + 1]
                a2 = A[i + 2]
                a3 = A[i + 3]
                s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = np.float32(0.0)
                for t in range(d):
                    x0 = b0[t]
                    x1 = b1[t]
                    s00 += abs(a0[t] - x0)
                    s01 += abs(a0[t] - x1)
                    s10 += abs(a1[t] - x0)
                    s11 += abs(a1[t] - x1)
                    s20 += abs(a2[t] - x0)
                    s21 += abs(a2[t] - x1)
                    s30 += abs(a3[t] - x0)
                    s31 += abs(a3[t] - x1)
                out[i, j] = s00
                out[i, j + 1] = s01
                out[i + 1, j] = s10
                out[i + 1, j + 1] = s11
                out[i + 2, j] = s20
                out[i + 2, j + 1] = s21
                out[i + 3, j] = s30
                out[i + 3, j + 1] = s31
                i += 4
            while i < q1:  # left-over queries of the block
                a0 = A[i]
                s0 = s1 = np.float32(0.0)
                for t in range(d):
                    s0 += abs(a0[t] - b0[t])
                    s1 += abs(a0[t] - b1[t])
                out[i, j] = s0
                out[i, j + 1] = s1
                i += 1
        if n_b % 2 == 1:  # left-over train row
            b0 = B[n_b - 1]
            for i in range(q0, q1):
                a0 = A[i]
                s0 = np.float32(0.0)
                for t in range(d):
                    s0 += abs(a0[t] - b0[t])
                out[i, n_b - 1] = s0


@functools.cache
def _numba_l1_kernel() -> Callable[..., None] | None:
    """The compiled kernel (cached on disk by numba), or None when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None
    global _prange
    _prange = numba.prange
    return numba.njit(parallel=True, fastmath=True, cache=True)(_l1_block_py)


def _l1_torch_cpu(a: Tensor, b: Tensor) -> Tensor:
    """Sum_i |a_i - b_i| for all pairs by broadcasting small cache-sized blocks (2-3x ``cdist(p=1)``)."""
    out = a.new_empty(a.shape[0], b.shape[0])
    qc, nc = 16, 64  # a [16, 64, d] difference block (8 MiB at d=2048) stays in cache
    for i in range(0, a.shape[0], qc):
        for j in range(0, b.shape[0], nc):
            out[i : i + qc, j : j + nc] = (a[i : i + qc, None] - b[None, j : j + nc]).abs_().sum(-1)
    return out


def pairwise_distance(a: Tensor, b: Tensor, p: int, backend: str = "auto") -> Tensor:
    """|| a_i - b_j ||_p for all pairs, [Q, d] x [N, d] -> [Q, N] float32 (rows already normalised).

    ``backend``: "auto" (numba on CPU when available, else torch), "numba", or "torch".
    """
    a = a.float().contiguous()
    b = b.float().contiguous()
    if p == 2:
        # ||a||^2 + ||b||^2 - 2 a.b; clamp the rounding below zero before the square root.
        d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return d2.clamp_min_(0.0).sqrt_()
    if p != 1:
        raise ValueError(f"p must be 1 or 2, got {p}")
    if a.device.type == "cpu" and backend in ("auto", "numba"):
        kernel = _numba_l1_kernel()
        if kernel is not None:
            out = torch.empty(a.shape[0], b.shape[0])
            kernel(a.numpy(), b.numpy(), out.numpy())
            return out
        if backend == "numba":
            raise RuntimeError("backend='numba' needs numba: pip install numba")
    if a.device.type == "cpu":
        return _l1_torch_cpu(a, b)
    return torch.cdist(a, b, p=1.0)


# ---------------------------------------------------------------------------------------------------------
# Neighbour lists and votes.


def knn_neighbours(
    train_features: Tensor,
    query_features: Tensor,
    k: int,
    p: int = 1,
    *,
    query_chunk: int | None = None,
    train_chunk: int | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The k nearest training rows of every query under D_p (App. C), nearest first.

    Returns (distances [Q, k'] float32, indices [Q, k'] long) with k' = min(k, N), on the training features'
    device. A running top-k is kept across training chunks, so memory is O(query_chunk * train_chunk)
    whatever the set sizes (defaults: 1024 x 8192 on CPU, 4096 x 32768 = 512 MiB of distances on GPU).
    """
    n_train = train_features.shape[0]
    k = min(k, n_train)
    train_n = normalize_p(train_features.detach().float(), p)
    query_n = normalize_p(query_features.detach().float(), p).to(train_n.device)
    on_cpu = train_n.device.type == "cpu"
    query_chunk = query_chunk or (1024 if on_cpu else 4096)
    train_chunk = train_chunk or (8192 if on_cpu else 32768)
    if query_n.shape[0] == 0 or k == 0:
        shape = (query_n.shape[0], k)
        return query_n.new_empty(shape), torch.empty(shape, dtype=torch.long, device=query_n.device)
    all_d, all_i = [], []
    for q0 in range(0, query_n.shape[0], query_chunk):
        q = query_n[q0 : q0 + query_chunk]
        best_d = q.new_full((q.shape[0], 0), float("inf"))
        best_i = torch.empty(q.shape[0], 0, dtype=torch.long, device=q.device)
        for n0 in range(0, n_train, train_chunk):
            d = pairwise_distance(q, train_n[n0 : n0 + train_chunk], p, backend)  # [q, n]
            kk = min(k, d.shape[1])
            vals, idx = d.topk(kk, dim=1, largest=False, sorted=False)
            best_d = torch.cat([best_d, vals], dim=1)
            best_i = torch.cat([best_i, idx + n0], dim=1)
            if best_d.shape[1] > k:
                best_d, sel = best_d.topk(k, dim=1, largest=False, sorted=False)
                best_i = best_i.gather(1, sel)
        # Sort by (distance, training index): index order first, then a stable sort on the distance.
        best_i, order = best_i.sort(dim=1)
        best_d = best_d.gather(1, order)
        best_d, order = best_d.sort(dim=1, stable=True)
        all_d.append(best_d)
        all_i.append(best_i.gather(1, order))
    return torch.cat(all_d), torch.cat(all_i)


def vote_ranking(neighbour_labels: Tensor, num_classes: int, topk: int = 5) -> Tensor:
    """Labels ranked by vote count among neighbours given nearest first, [Q, k] -> [Q, topk] (App. C).

    Equal counts are ordered by the position of each label's nearest neighbour, so column 0 is the
    majority vote with the paper's tie-break. Labels with no vote are never ranked: their slots hold -1.
    """
    if neighbour_labels.shape[0] > _VOTE_CHUNK:  # bound the [Q, num_classes] count tables
        return torch.cat([vote_ranking(c, num_classes, topk) for c in neighbour_labels.split(_VOTE_CHUNK)])
    n_q, k = neighbour_labels.shape
    dev = neighbour_labels.device
    counts = torch.zeros(n_q, num_classes, dtype=torch.long, device=dev)
    counts.scatter_add_(1, neighbour_labels, torch.ones_like(neighbour_labels))
    pos = torch.arange(k, device=dev).expand(n_q, k)
    first = torch.full((n_q, num_classes), k, dtype=torch.long, device=dev)
    first.scatter_reduce_(1, neighbour_labels, pos, reduce="amin")
    # Key: more votes first, then the nearer first neighbour; unvoted labels get a negative key.
    key = torch.where(counts > 0, counts * (k + 1) + (k - first), torch.full_like(counts, -1))
    key, labels = key.topk(min(topk, num_classes), dim=1)
    labels = labels.masked_fill(key < 0, -1)
    if labels.shape[1] < topk:
        labels = torch.cat([labels, labels.new_full((n_q, topk - labels.shape[1]), -1)], dim=1)
    return labels


def _num_classes(train_labels: Tensor) -> int:
    return int(train_labels.max().item()) + 1


def knn_topk(
    train_features: Tensor,
    train_labels: Tensor,
    query_features: Tensor,
    k: int,
    p: int = 1,
    topk: int = 5,
    **chunking: int | str | None,
) -> Tensor:
    """k-NN label ranking [Q, topk] under D_p: by vote count, ties by nearest neighbour (App. C)."""
    _, idx = knn_neighbours(train_features, query_features, k, p, **chunking)  # type: ignore[arg-type]
    labels = train_labels.to(idx.device).long()
    return vote_ranking(labels[idx], _num_classes(labels), topk)


def knn_classify(
    train_features: Tensor,
    train_labels: Tensor,
    query_features: Tensor,
    k: int,
    p: int = 1,
    **chunking: int | str | None,
) -> Tensor:
    """Majority-vote k-NN prediction [Q] under D_p, ties broken by the nearest tied neighbour (App. C)."""
    return knn_topk(train_features, train_labels, query_features, k, p, topk=1, **chunking)[:, 0]


def knn_table(
    train_features: Tensor,
    train_labels: Tensor,
    query_features: Tensor,
    query_labels: Tensor,
    ks: Sequence[int] = (1, 5, 25, 50),
    ps: Sequence[int] = (1, 2),
    **chunking: int | str | None,
) -> dict[str, float]:
    """Table 6 of App. C: top-1 / top-5 accuracy (fractions) for every (p, k) as {"d1_k25_top1": ...}.

    The neighbour list is computed once per p for max(ks) and truncated for every smaller k. Top-5 ranks only
    labels that received a vote, so for k < 5 it counts at most k labels (the paper leaves k=1 top-5 blank).
    """
    labels = train_labels.long()
    n_cls = max(_num_classes(labels), _num_classes(query_labels.long()))
    out: dict[str, float] = {}
    for p in ps:
        _, idx = knn_neighbours(train_features, query_features, max(ks), p, **chunking)  # type: ignore[arg-type]
        neigh = labels.to(idx.device)[idx]  # [Q, max k], nearest first
        truth = query_labels.to(idx.device).long()[:, None]
        for k in ks:
            ranking = vote_ranking(neigh[:, :k], n_cls, topk=5)
            hit = ranking == truth
            out[f"d{p}_k{k}_top1"] = hit[:, 0].float().mean().item()
            out[f"d{p}_k{k}_top5"] = hit.any(dim=1).float().mean().item()
    return out
