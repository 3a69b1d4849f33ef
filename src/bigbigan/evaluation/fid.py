"""Generation metrics on Inception outputs (paper Sec. 3.1, App. A-B): FID, KID and Inception Score.

Pure math on features/probabilities; the networks that produce them live in ``inception.py``. Always report
the sample counts with a score: FID and IS are biased by the number of samples (KID is not).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ArrayLike = np.ndarray | Tensor


def _np64(a: ArrayLike) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def feature_stats(f: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean [d] and covariance [d, d] (unbiased, N - 1) of features [N, d], in float64 numpy."""
    f = _np64(f)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_stats needs features [N >= 2, d], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID on Inception pool3 statistics):

        ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    tr((sigma1 sigma2)^(1/2)) = tr((s1^(1/2) sigma2 s1^(1/2))^(1/2)) is computed from the eigenvalues of that
    symmetric PSD matrix: no complex ``sqrtm`` (hence no imaginary parts to discard) and no failure on the
    singular covariances of fewer samples than dimensions.
    """
    mu1, mu2, sigma1, sigma2 = _np64(mu1), _np64(mu2), _np64(sigma1), _np64(sigma2)
    root1 = _sqrt_psd(sigma1)
    m = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def kid(
    f1: ArrayLike, f2: ArrayLike, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over random subsets drawn without replacement. Returns (mean, std)
    over subsets; ``subset_size`` is clipped to the smaller set."""
    x_all = torch.as_tensor(f1).double()
    y_all = torch.as_tensor(f2).double().to(x_all.device)
    n1, n2, d = x_all.shape[0], y_all.shape[0], x_all.shape[1]
    m = min(subset_size, n1, n2)
    if m < 2:
        raise ValueError("kid needs at least 2 samples per set")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = x_all[torch.from_numpy(rng.choice(n1, m, replace=False)).to(x_all.device)]
        y = y_all[torch.from_numpy(rng.choice(n2, m, replace=False)).to(x_all.device)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append(float(within - 2.0 * k_xy.sum() / (m * m)))
    v = np.asarray(values)
    return float(v.mean()), float(v.std())


def inception_score(probs: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` consecutive
    chunks of the class probabilities [N, C]; returns (mean, std) over the chunks as the original code."""
    p = torch.as_tensor(probs).double()
    scores = []
    for chunk in p.tensor_split(splits):
        p_y = chunk.mean(dim=0, keepdim=True)
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, p_y.expand_as(chunk))).sum(dim=1).mean()
        scores.append(float(torch.exp(kl)))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std())
