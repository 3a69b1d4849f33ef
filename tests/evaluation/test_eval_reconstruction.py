"""Relative L1 reconstruction error (App. B)."""

import pytest
import torch

from bigbigan.evaluation.reconstruction import relative_l1_error


def test_identical_is_zero():
    x = torch.rand(5, 3, 4, 4)
    assert relative_l1_error(x, x.clone()) == 0.0


def test_unrelated_reconstructions_are_about_one():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 1, 8, 8, generator=g) * 2 - 1
    x_rec = torch.rand(2000, 1, 8, 8, generator=g) * 2 - 1  # same distribution, independent of x
    assert relative_l1_error(x, x_rec) == pytest.approx(1.0, abs=0.02)


def test_three_samples_by_hand():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    x_rec = torch.tensor([[0.5], [1.0], [2.0]])
    # numerator |0-.5| + |1-1| + |3-2| = 1.5; denominator |x1-r0| + |x2-r1| + |x0-r2| = .5 + 2 + 2 = 4.5
    assert relative_l1_error(x, x_rec) == pytest.approx(1.5 / 4.5)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        relative_l1_error(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError):
        relative_l1_error(torch.zeros(1, 2), torch.zeros(1, 2))
