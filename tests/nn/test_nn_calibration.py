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


def _correlated_windows(mixing: torch.Tensor, seed: int, n_windows: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """States [B, C, 3] with covariance mixing mixing^T, and one unit per window whose log-rate reads dimension 0."""
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(n_windows, 200, 3, generator=generator) @ mixing
    counts = torch.poisson(torch.exp(0.3 * states[:, :, 0] - 0.5), generator=generator)
    return states, counts


def test_whitened_triggered_states_estimate_the_readout_whatever_states_the_windows_visited():
    from spikefm.nn.calibration import registered_triggered_states, triggered_states

    # two calibration sets visiting differently correlated states: the plain average (Cov(state) w) turns with
    # the covariance, the whitened one stays along the unit's readout w = e0
    mixes = [torch.tensor([[1.0, 0.9, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]]),
             torch.tensor([[1.0, -0.9, 0.6], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]])]
    plain, white = [], []
    for seed, mixing in enumerate(mixes):
        states, counts = _correlated_windows(mixing, seed)
        window, keys, sessions = torch.arange(len(states)), ["s/u"] * len(states), ["s"] * len(states)
        plain.append(registered_triggered_states(counts, states, keys, window)["s/u"][:3])
        white.append(registered_triggered_states(counts, states, keys, window, ridge=1e-3)["s/u"][:3])
        in_batch = triggered_states(counts, states, keys, window, sessions, training=False, ridge=1e-3)[:, :3]
        cosine = torch.nn.functional.cosine_similarity(in_batch, torch.tensor([[1.0, 0.0, 0.0]]))
        assert (cosine > 0.95).all()  # leave-one-out pools, each whitened by its own pool's covariance
    along = lambda v: float(v[0] / v.norm())  # noqa: E731
    assert min(along(w) for w in white) > 0.95
    assert min(along(p) for p in plain) < 0.8
    assert float(torch.nn.functional.cosine_similarity(plain[0], plain[1], dim=0)) < 0.5


def test_whitened_triggered_states_never_read_the_own_window():
    from spikefm.nn.calibration import triggered_states

    states, counts = _correlated_windows(torch.eye(3), 3, n_windows=8)
    window, keys, sessions = torch.arange(8), ["s/u"] * 8, ["s"] * 8
    for training in (True, False):  # folds (training) and leave-one-out (evaluation)
        out = triggered_states(counts, states, keys, window, sessions, training=training, ridge=0.1)
        changed_states, changed_counts = states.clone(), counts.clone()
        changed_states[2] += 5.0  # the window's own states (and so the covariance of its own chunks) and spikes
        changed_counts[2] = 0
        again = triggered_states(changed_counts, changed_states, keys, window, sessions, training=training, ridge=0.1)
        torch.testing.assert_close(again[2], out[2])
        assert not torch.allclose(again[1], out[1])


def test_whitening_runs_in_float32_under_bf16_autocast():
    """Regression: under bf16 autocast (the trainer's bf16 precisions, the GPU throughput benchmark) the whitening
    product came out in bf16 and could not be written into the float32 rows; the covariance is also too coarse to
    invert in bf16."""
    from spikefm.nn.calibration import registered_triggered_states, triggered_states

    states, counts = _correlated_windows(torch.tensor([[1.0, 0.9, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]]), 4)
    window, keys, sessions = torch.arange(len(states)), ["s/u"] * len(states), ["s"] * len(states)
    exact = triggered_states(counts, states, keys, window, sessions, training=True, ridge=0.1)
    registered = registered_triggered_states(counts, states, keys, window, ridge=0.1)["s/u"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = triggered_states(counts, states, keys, window, sessions, training=True, ridge=0.1)
        mixed_registered = registered_triggered_states(counts, states, keys, window, ridge=0.1)["s/u"]
    assert mixed.dtype == exact.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, rtol=0.05, atol=0.05)
    torch.testing.assert_close(mixed_registered, registered, rtol=0.05, atol=0.05)
