"""In-batch calibration pooling: each row gets the mean of its unit over the other folds only."""

import torch

from spikefm.nn.calibration import pool_other_folds, session_folds


def test_session_folds_alternate_within_each_session():
    assert session_folds(["a", "b", "a", "a", "b"], training=True) == ([0, 0, 1, 0, 1], 2)
    assert session_folds(["a", "b", "a", "a", "b"], training=False) == ([0, 0, 1, 2, 1], 3)


def test_pool_other_folds_is_the_other_folds_mean_and_skips_non_contributing_rows():
    values = torch.tensor([[1.0], [2.0], [4.0], [8.0], [16.0]])
    key = torch.tensor([0, 0, 0, 1, 1])
    fold = torch.tensor([0, 1, 2, 0, 1])
    pooled = pool_other_folds(values, key, fold, 3)
    torch.testing.assert_close(pooled[:, 0], torch.tensor([3.0, 2.5, 1.5, 16.0, 8.0]))
    # Row 1 hidden: it feeds nobody's mean, but still gets its own (from rows 0 and 2).
    hidden = pool_other_folds(values, key, fold, 3, contributes=torch.tensor([True, False, True, True, True]))
    torch.testing.assert_close(hidden[:, 0], torch.tensor([4.0, 2.5, 1.0, 16.0, 8.0]))


def test_a_unit_alone_in_its_fold_pools_zeros():
    pooled = pool_other_folds(torch.ones(2, 3), torch.tensor([0, 1]), torch.tensor([0, 0]), 2)
    assert torch.equal(pooled, torch.zeros(2, 3))
