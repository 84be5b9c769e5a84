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


def test_triggered_states_point_along_a_units_tuning_and_skip_its_own_window():
    from spikefm.nn.calibration import triggered_states

    generator = torch.Generator().manual_seed(0)
    states = torch.randn(6, 40, 3, generator=generator)  # [B windows, C chunks, H]
    # one unit per window, same key; it fires with state dimension 1 (its "tuning")
    counts = torch.poisson(torch.exp(0.8 * states[:, :, 1]), generator=generator)  # [B, C]
    window = torch.arange(6)
    out = triggered_states(counts, states, ["s/u"] * 6, window, ["s"] * 6, training=False)
    assert out.shape == (6, 4)
    direction = out[:, :3] / out[:, :3].norm(dim=1, keepdim=True)
    assert (direction[:, 1] > 0.9).all()  # the triggered average is along dimension 1
    # leave-one-out: a window's own counts never enter its row
    changed = counts.clone()
    changed[2] = 0
    again = triggered_states(changed, states, ["s/u"] * 6, window, ["s"] * 6, training=False)
    torch.testing.assert_close(again[2], out[2])
    assert not torch.allclose(again[0], out[0])
    # only contributing windows are pooled
    only = triggered_states(counts, states, ["s/u"] * 6, window, ["s"] * 6, training=False,
                            contributes=torch.tensor([True, True, False, False, False, False]))
    alone = triggered_states(counts[:2], states[:2], ["s/u"] * 2, window[:2], ["s"] * 2, training=False)
    torch.testing.assert_close(only[5], triggered_states(counts[:3], states[:3], ["s/u"] * 3, window[:3], ["s"] * 3,
                                                         training=False)[2])
    torch.testing.assert_close(only[0], alone[0])
