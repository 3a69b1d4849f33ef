"""FID, KID and Inception Score math against closed forms and hand-computed cases."""

import itertools
import math

import numpy as np
import pytest
import torch

from bigbigan.evaluation.fid import feature_stats, frechet_distance, inception_score, kid


def test_feature_stats_match_numpy():
    f = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    mu, sigma = feature_stats(f)
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    np.testing.assert_allclose(mu, f.double().mean(0).numpy())
    np.testing.assert_allclose(sigma, np.cov(f.double().numpy(), rowvar=False))


def test_fid_of_a_set_with_itself_is_zero():
    f = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    mu, sigma = feature_stats(f)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_grows_with_noise():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(500, 12, generator=g) @ torch.randn(12, 12, generator=g)
    noise = torch.randn(500, 12, generator=g)
    ref = feature_stats(f)
    fids = [frechet_distance(*ref, *feature_stats(f + s * noise)) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert fids[0] == pytest.approx(0.0, abs=1e-8)
    assert all(a < b for a, b in itertools.pairwise(fids))


def test_fid_closed_forms():
    # Commuting (diagonal) covariances: ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(5.0 + 1.0 + 1.0 + 0.0)
    # Non-commuting by hand: sigma1 = [[2, 1], [1, 2]] (eigenvalues 3, 1), sigma2 = I:
    # tr(sigma1 + I - 2 sigma1^(1/2)) = 4 + 2 - 2 (sqrt(3) + 1) = 4 - 2 sqrt(3)
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert frechet_distance(np.zeros(2), s1, np.array([3.0, 4.0]), np.eye(2)) == pytest.approx(
        25.0 + 4.0 - 2.0 * math.sqrt(3.0)
    )


def test_fid_agrees_with_scipy_sqrtm_on_random_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T, b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)
    # Tensors are accepted too; singular covariances (fewer samples than dimensions) stay finite.
    few = torch.randn(5, 20, generator=torch.Generator().manual_seed(4))
    assert math.isfinite(frechet_distance(*feature_stats(few), *feature_stats(few + 1)))


def test_kid_is_unbiased_and_detects_a_shift():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same_mean, same_std = kid(x, y, subsets=20, subset_size=200)
    assert abs(same_mean) < 2 * same_std  # unbiased: zero within the subset noise
    shifted_mean, _ = kid(x, y + 0.5, subsets=20, subset_size=200)
    assert shifted_mean > 10 * same_std and shifted_mean > 0
    assert kid(x, y, subsets=3, subset_size=5000)[0] == kid(x, y, subsets=3, subset_size=600)[0]  # clipped


def test_inception_score_extremes():
    assert inception_score(torch.full((40, 10), 0.1), splits=4) == pytest.approx((1.0, 0.0))
    one_hot = torch.eye(4).repeat(10, 1)  # every split of 4 rows holds all four classes once
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(4.0) and std == pytest.approx(0.0, abs=1e-12)
