"""Identity offsets (POYO-style recalibration of inferred identities): empty by default, zero for
units without a row, only the chosen units' rows train."""

import torch

from spikefm.nn.identity_offsets import IdentityOffsets


def test_an_empty_table_has_no_parameters_and_gives_zeros():
    table = IdentityOffsets(dim=4)
    assert len(table) == 0 and table.weight.numel() == 0
    like = torch.ones(1, dtype=torch.float64)
    out = table.offsets(["s/a", "s/b"], like)
    assert out.shape == (2, 4) and out.dtype == torch.float64 and not out.any()


def test_new_rows_start_at_zero_and_only_trained_keys_get_gradient():
    table = IdentityOffsets(dim=3)
    table.extend(["old/a", "new/a", "new/b"])
    like = torch.zeros(1)
    assert not table.offsets(["new/a"], like).any()  # zero-initialised: recalibration starts at the identity
    params = table.train_only(["new/a", "new/b"])
    assert params == [table.weight]
    (table.offsets(["old/a", "new/a", "new/b", "other/x"], like) * torch.arange(1.0, 13.0).view(4, 3)).sum().backward()
    grad = table.weight.grad
    assert not grad[0].any() and grad[1].abs().sum() > 0 and grad[2].abs().sum() > 0


def test_units_without_a_row_get_zero_offsets():
    table = IdentityOffsets(dim=2)
    table.extend(["s/a"])
    with torch.no_grad():
        table.weight.fill_(1.0)
    out = table.offsets(["s/a", "s/b"], torch.zeros(1))
    assert out.tolist() == [[1.0, 1.0], [0.0, 0.0]]
