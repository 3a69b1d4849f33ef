"""k-nearest-neighbour classification on frozen features (paper App. C), fast and memory-bounded.

The definitions (D_p distance, majority vote, tie-break by the nearest tied neighbour) are those of
``knn_reference``, which this module reproduces: batched tensor code, chunked over queries and over the
training set so that memory stays bounded (ImageNet-sized sets fit a GPU), on the device of the inputs, with
the distance kernels of ``knn_kernels``. Exactly equal distances are ordered by ``torch.topk`` at the chunk
boundaries and by training index in the final list.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .knn_kernels import pairwise_distance
from .knn_reference import normalize_p

_VOTE_CHUNK = 4096

__all__ = ["knn_classify", "knn_neighbours", "knn_table", "knn_topk", "normalize_p", "pairwise_distance",
           "vote_ranking"]


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
