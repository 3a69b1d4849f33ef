"""k-NN classification (App. C): distances, votes with the paper's tie-break, chunking, backends."""

import math

import pytest
import torch

from bigbigan.evaluation import knn, knn_kernels
from bigbigan.evaluation.knn import (
    knn_classify,
    knn_neighbours,
    knn_table,
    knn_topk,
    normalize_p,
    pairwise_distance,
    vote_ranking,
)
from bigbigan.evaluation.knn_reference import reference_topk


def test_normalize_p_hand_values():
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 1.0]])
    torch.testing.assert_close(
        normalize_p(a, 2), torch.tensor([[0.6, 0.8], [0.0, 0.0], [-(0.5**0.5), 0.5**0.5]])
    )
    torch.testing.assert_close(normalize_p(a, 1), torch.tensor([[3 / 7, 4 / 7], [0.0, 0.0], [-0.5, 0.5]]))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_pairwise_distance_matches_float64_brute_force(p, backend):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(37, 19, generator=g), torch.randn(51, 19, generator=g)  # odd sizes: kernel remainders
    ref = torch.cdist(a.double(), b.double(), p=float(p))
    torch.testing.assert_close(pairwise_distance(a, b, p, backend).double(), ref, rtol=1e-5, atol=1e-5)


def _line_points(ts, p):
    """2-D features whose normalised D_p distance is monotone in |t - s|: (t, 1 - t) lies on the L1 unit
    circle (D_1 = 2|t - s|); angle t * pi / 2 on the L2 circle (D_2 = 2 sin(|t - s| pi / 4)). Scaled
    by 3 to exercise the normalisation."""
    t = torch.tensor(ts, dtype=torch.float32)
    if p == 1:
        return 3 * torch.stack([t, 1 - t], dim=1)
    return 3 * torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)], dim=1)


@pytest.mark.parametrize("p", [1, 2])
def test_votes_and_tie_breaks_hand_built(p):
    # Query at 0.5. Neighbours by distance: 0.45 (label 1), 0.58 (2), 0.40 (2), 0.62 (1), 0.90 (3).
    train = _line_points([0.58, 0.90, 0.45, 0.62, 0.40], p)
    labels = torch.tensor([2, 3, 1, 1, 2])
    query = _line_points([0.5], p)
    expected = {1: 1, 2: 1, 3: 2, 4: 1, 5: 1}  # k=2: 1-1 tie -> nearest tied (1); k=3: 2 votes for 2; ...
    for k, want in expected.items():
        assert knn_classify(train, labels, query, k, p).tolist() == [want], k
    assert knn_topk(train, labels, query, 5, p).tolist() == [[1, 2, 3, -1, -1]]
    assert knn_topk(train, labels, query, 3, p).tolist() == [[2, 1, -1, -1, -1]]


@pytest.mark.parametrize("p", [1, 2])
def test_tie_is_broken_among_tied_labels_only(p):
    # The overall nearest neighbour (label 3, one vote) must not decide a 2-2 tie between labels 1 and 2.
    train = _line_points([0.49, 0.55, 0.44, 0.57, 0.43], p)
    labels = torch.tensor([3, 1, 2, 2, 1])
    query = _line_points([0.5], p)
    assert knn_classify(train, labels, query, 1, p).tolist() == [3]
    assert knn_classify(train, labels, query, 5, p).tolist() == [1]
    assert knn_topk(train, labels, query, 5, p, topk=3).tolist() == [[1, 2, 3]]


def test_vote_ranking_pads_unvoted_labels():
    ranked = vote_ranking(torch.tensor([[4, 0, 0, 4, 2]]), num_classes=6, topk=5)
    assert ranked.tolist() == [[4, 0, 2, -1, -1]]  # 4 and 0 tie at 2 votes; label 4 is nearer


@pytest.mark.parametrize("p", [1, 2])
def test_reference_follows_appendix_c_on_the_hand_built_cases(p):
    # The oracle itself, on the hand-built cases above: votes, the tie-break among tied labels, -1 padding.
    train = _line_points([0.58, 0.90, 0.45, 0.62, 0.40], p)
    labels, query = torch.tensor([2, 3, 1, 1, 2]), _line_points([0.5], p)
    assert reference_topk(train, labels, query, 2, p)[:, 0].tolist() == [1]
    assert reference_topk(train, labels, query, 3, p).tolist() == [[2, 1, -1, -1, -1]]
    assert reference_topk(train, labels, query, 5, p).tolist() == [[1, 2, 3, -1, -1]]
    train = _line_points([0.49, 0.55, 0.44, 0.57, 0.43], p)
    assert reference_topk(train, torch.tensor([3, 1, 2, 2, 1]), query, 5, p, topk=3).tolist() == [[1, 2, 3]]


@pytest.mark.parametrize("p", [1, 2])
def test_agrees_with_brute_force_on_random_data(p):
    g = torch.Generator().manual_seed(1)
    train, queries = torch.rand(300, 12, generator=g), torch.rand(41, 12, generator=g)
    labels = torch.randint(0, 4, (300,), generator=g)  # few classes: many vote ties
    for k in (1, 2, 5, 10, 25):
        ours = knn_topk(train, labels, queries, k, p, query_chunk=16, train_chunk=37)
        torch.testing.assert_close(ours, reference_topk(train, labels, queries, k, p))


@pytest.mark.parametrize("p", [1, 2])
def test_k1_is_argmin_and_neighbours_are_sorted(p):
    g = torch.Generator().manual_seed(2)
    train, queries = torch.randn(200, 16, generator=g), torch.randn(30, 16, generator=g)
    labels = torch.arange(200)
    d = torch.cdist(normalize_p(queries.double(), p), normalize_p(train.double(), p), p=float(p))
    assert torch.equal(knn_classify(train, labels, queries, 1, p, train_chunk=64), d.argmin(dim=1))
    dist, idx = knn_neighbours(train, queries, 7, p, query_chunk=8, train_chunk=50)
    assert torch.equal(idx, d.argsort(dim=1)[:, :7])
    torch.testing.assert_close(dist.double(), d.sort(dim=1).values[:, :7], rtol=1e-5, atol=1e-5)
    assert knn_neighbours(train[:3], queries, 7, p)[1].shape == (30, 3)  # k clipped to the training set


def test_numba_and_torch_backends_agree():
    if knn_kernels._numba_l1_kernel() is None:
        pytest.skip("numba not installed")
    g = torch.Generator().manual_seed(3)
    train, queries = torch.rand(257, 33, generator=g), torch.rand(70, 33, generator=g)
    a = knn_neighbours(train, queries, 9, 1, backend="numba")
    b = knn_neighbours(train, queries, 9, 1, backend="torch")
    assert torch.equal(a[1], b[1])
    torch.testing.assert_close(a[0], b[0])


def test_knn_table_keys_values_and_single_neighbour_search(monkeypatch):
    g = torch.Generator().manual_seed(4)
    centres = torch.randn(3, 10, generator=g) * 3
    train_y, query_y = torch.randint(0, 3, (150,), generator=g), torch.randint(0, 3, (40,), generator=g)
    train = centres[train_y] + torch.randn(150, 10, generator=g)
    queries = centres[query_y] + torch.randn(40, 10, generator=g)
    calls = []
    real = knn.knn_neighbours
    monkeypatch.setattr(knn, "knn_neighbours", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    table = knn_table(train, train_y, queries, query_y, ks=(1, 5, 25), ps=(1, 2))
    assert calls == [25, 25]  # one neighbour list per p, for max(k)
    assert set(table) == {f"d{p}_k{k}_top{t}" for p in (1, 2) for k in (1, 5, 25) for t in (1, 5)}
    for p in (1, 2):
        for k in (1, 5, 25):
            ranked = real(train, queries, k, p)[1]
            pred = vote_ranking(train_y[ranked], 3, 5)
            assert table[f"d{p}_k{k}_top1"] == pytest.approx((pred[:, 0] == query_y).float().mean().item())
            assert table[f"d{p}_k{k}_top5"] >= table[f"d{p}_k{k}_top1"]
    assert table["d2_k5_top1"] > 0.8  # well separated blobs
