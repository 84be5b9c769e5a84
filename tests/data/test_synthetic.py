"""Synthetic ground truth: structure, determinism, and spikes that match the stored rates."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.recording import Recording
from spikefm.data.synthetic import SyntheticConfig, SyntheticDataset, generate, make_recording

SMALL = dict(n_sessions=2, n_trials=6, units_per_session=(8, 12))


@pytest.fixture(scope="module")
def default_data() -> SyntheticDataset:
    return generate()


@pytest.fixture(scope="module")
def long_session() -> SyntheticDataset:
    """One 240 s session with 60 units: long enough for rate statistics."""
    return generate(SyntheticConfig(n_sessions=1, n_trials=200, units_per_session=(60, 60), seed=3))


def _ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    x1 = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(x1.T @ x1 + alpha * np.eye(x1.shape[1]), x1.T @ y)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)))


# ---------------------------------------------------------------------- structure
def test_default_dataset_layout(default_data: SyntheticDataset) -> None:
    config = default_data.config
    assert [r.session for r in default_data.recordings] == [f"synth-{i}" for i in range(4)]
    for index, recording in enumerate(default_data.recordings):
        assert recording.subject == "synth-subject"
        assert 40 <= recording.n_units <= 60
        assert recording.start == 0.0 and recording.end == pytest.approx(100 * config.trial_period)
        assert np.all(np.diff(recording.spikes.times) >= 0) and recording.spikes.times.dtype == np.float64
        assert default_data.true_rates[index].shape == (24000, recording.n_units)
        assert default_data.latents[index].shape == (24000, 8)
        trials = recording.trials
        assert len(trials) == 100 and set(trials.columns) == {"condition", "split", "move_onset_time"}
        assert set(np.unique(trials.columns["condition"])) == set(range(8))
        onset = trials.columns["move_onset_time"]
        assert np.all((onset > trials.start) & (onset < trials.end))
        splits, counts = np.unique(trials.columns["split"], return_counts=True)
        assert dict(zip(splits.tolist(), counts.tolist())) == {"train": 70, "val": 10, "test": 20}
        hand_vel = recording.behavior["hand_vel"]
        assert hand_vel.values.shape == (12000, 2) and np.allclose(np.diff(hand_vel.timestamps), 0.01)
        assert recording.units.heldout.sum() == round(0.25 * recording.n_units)
        assert 2 <= len(set(recording.units.region)) <= 3


def test_consecutive_sessions_share_drifted_units(default_data: SyntheticDataset) -> None:
    for s in range(1, 4):
        previous, current = default_data.recordings[s - 1], default_data.recordings[s]
        shared = sorted(set(previous.units.ids) & set(current.units.ids))
        assert len(shared) == round(0.3 * current.n_units)
        for uid in shared:
            i, j = list(previous.units.ids).index(uid), list(current.units.ids).index(uid)
            assert previous.units.region[i] == current.units.region[j]
            w_prev, w_cur = default_data.readout_weights[s - 1][i], default_data.readout_weights[s][j]
            assert np.array_equal(w_prev != 0, w_cur != 0)  # same latent support
            relative = np.linalg.norm(w_cur - w_prev) / np.linalg.norm(w_prev)
            assert 0 < relative < 0.5  # drifted, but the same neuron
    # Non-consecutive sessions only share units that survived every step in between.
    assert len(set(default_data.recordings[0].units.ids) & set(default_data.recordings[1].units.ids)) > 0


def test_regions_read_their_own_latent_dims(default_data: SyntheticDataset) -> None:
    dims = default_data.region_latent_dims
    assert set(dims) == {"M1", "PMd", "S1"}
    assert set(np.concatenate(list(dims.values())).tolist()) == set(range(8))  # all latents observed
    assert len({tuple(d.tolist()) for d in dims.values()}) == 3  # and regions differ
    for recording, weights in zip(default_data.recordings, default_data.readout_weights):
        for region, w in zip(recording.units.region, weights):
            outside = np.setdiff1d(np.arange(8), dims[region])
            assert np.all(w[outside] == 0)


def test_rates_are_exp_affine_readout_and_behaviour_linear(default_data: SyntheticDataset) -> None:
    latents = default_data.latents[0].astype(np.float64)
    rates = np.exp(latents @ default_data.readout_weights[0].T + default_data.readout_bias[0])
    np.testing.assert_allclose(default_data.true_rates[0], rates, rtol=1e-4)
    np.testing.assert_allclose(default_data.true_behavior[0], latents @ default_data.behavior_readout.T, atol=1e-5)
    hand_vel = default_data.recordings[0].behavior["hand_vel"].values
    noise = hand_vel - default_data.true_behavior[0][::2]
    assert noise.std() == pytest.approx(0.05, rel=0.1)
    # Realistic ranges: per-unit mean rates mostly 1-30 Hz, a few near-silent, peaks rarely past 80 Hz.
    mean_rates = np.concatenate([r.mean(0) for r in default_data.true_rates])
    assert np.mean((mean_rates > 0.5) & (mean_rates < 40)) > 0.85 and np.any(mean_rates < 0.5)
    assert np.mean(np.concatenate([r.ravel() for r in default_data.true_rates]) > 80) < 0.005


def test_rotational_reaches_point_in_the_condition_direction(default_data: SyntheticDataset) -> None:
    recording = default_data.recordings[0]
    trials, hand_vel = recording.trials, recording.behavior["hand_vel"]
    for trial in range(20):
        onset = trials.columns["move_onset_time"][trial]
        during = hand_vel.values[np.searchsorted(hand_vel.timestamps, onset + 0.25)]
        before = hand_vel.values[np.searchsorted(hand_vel.timestamps, onset - 0.1)]
        angle = 2 * np.pi * trials.columns["condition"][trial] / 8
        assert np.linalg.norm(during) > 0.5 and np.linalg.norm(before) < 0.3  # hold still, then reach
        assert np.dot(during / np.linalg.norm(during), [np.cos(angle), np.sin(angle)]) > 0.9


def test_generates_fast() -> None:
    generate(SyntheticConfig(n_sessions=1, n_trials=5))  # warm imports and caches
    elapsed = min(_timed(lambda: generate()) for _ in range(2))
    assert elapsed < 4.0, f"default generate() took {elapsed:.2f} s; target < 2 s on an idle core"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------- determinism
def _same(a: Recording, b: Recording) -> bool:
    return (
        np.array_equal(a.spikes.times, b.spikes.times)
        and np.array_equal(a.spikes.units, b.spikes.units)
        and np.array_equal(a.units.ids, b.units.ids)
        and np.array_equal(a.units.heldout, b.units.heldout)
        and np.array_equal(a.behavior["hand_vel"].values, b.behavior["hand_vel"].values)
        and all(np.array_equal(a.trials.columns[k], b.trials.columns[k]) for k in a.trials.columns)
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), system=st.sampled_from(["rotational", "lorenz"]))
def test_same_seed_same_data_other_seed_other_data(seed: int, system: str) -> None:
    config = SyntheticConfig(**SMALL, latent_system=system, seed=seed)
    first, second = generate(config), generate(config)
    assert all(_same(a, b) for a, b in zip(first.recordings, second.recordings))
    assert all(np.array_equal(a, b) for a, b in zip(first.true_rates, second.true_rates))
    other = generate(SyntheticConfig(**SMALL, latent_system=system, seed=seed + 1))
    assert not _same(first.recordings[0], other.recordings[0])


# ---------------------------------------------------------------------- spikes vs true rates
def test_spike_counts_match_true_rates(long_session: SyntheticDataset) -> None:
    recording = long_session.recordings[0]
    expected = long_session.true_rate_counts(0, 0.05)
    observed = recording.bin(0.05)
    assert expected.shape == observed.shape
    z = (observed.sum(0) - expected.sum(0)) / np.sqrt(expected.sum(0))
    assert np.abs(z).max() < 5, "a unit's spike count is off its true rate by more than 5 Poisson sd"
    assert np.corrcoef(expected.ravel(), observed.ravel())[0, 1] > 0.5
    # Trial averages (PSTHs) average the Poisson noise away: they must track the true PSTHs closely.
    trials, condition = recording.trials, recording.trials.columns["condition"]
    true_psth, psth = [], []
    for c in range(8):
        rows = np.flatnonzero(condition == c)
        expected = [long_session.true_rate_counts(0, 0.02, trials.start[i], trials.end[i]) for i in rows]
        true_psth.append(np.mean(expected, 0))
        psth.append(np.mean([recording.bin(0.02, trials.start[i], trials.end[i]) for i in rows], 0))
    assert np.corrcoef(np.ravel(true_psth), np.ravel(psth))[0, 1] > 0.85


def test_behaviour_decodable_from_latents_and_from_spikes(long_session: SyntheticDataset) -> None:
    recording = long_session.recordings[0]
    hand_vel = recording.behavior["hand_vel"].values
    latents = long_session.latents[0][::2].astype(np.float64)
    half = len(hand_vel) // 2
    coef = _ridge_fit(latents[:half], hand_vel[:half])
    assert _r2(hand_vel[half:], np.hstack([latents[half:], np.ones((half, 1))]) @ coef) > 0.95
    # A smoothed-spikes baseline decodes it too, though far from perfectly: room for models.
    counts = recording.bin(0.01).astype(np.float64)
    kernel = np.exp(-0.5 * (np.arange(-20, 21) / 6.0) ** 2)
    smooth = np.stack([np.convolve(c, kernel / kernel.sum(), mode="same") for c in counts.T], axis=1)
    coef = _ridge_fit(smooth[:half], hand_vel[:half], alpha=1.0)
    baseline = _r2(hand_vel[half:], np.hstack([smooth[half:], np.ones((len(smooth) - half, 1))]) @ coef)
    assert 0.2 < baseline < 0.95


def _brute_force_counts(data: SyntheticDataset, edges: np.ndarray) -> np.ndarray:
    """Integrate the piecewise-constant rate over [edges[i], edges[i+1]) by explicit overlaps."""
    dt, rates = data.rate_bin_size, data.true_rates[0].astype(np.float64)
    grid = np.arange(rates.shape[0] + 1) * dt
    out = np.zeros((len(edges) - 1, rates.shape[1]))
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        overlap = np.clip(np.minimum(grid[1:], b) - np.maximum(grid[:-1], a), 0, None)
        out[i] = overlap @ rates
    return out


@settings(max_examples=30, deadline=None)
@given(
    bin_size=st.floats(0.001, 0.2),
    t0=st.floats(-0.1, 5.0),
    span=st.floats(0.01, 2.0),
)
def test_true_rate_counts_integrate_the_rate_on_recording_bins(bin_size: float, t0: float, span: float) -> None:
    data = _small_data()
    recording = data.recordings[0]
    expected = data.true_rate_counts(0, bin_size, t0, t0 + span)
    assert expected.shape == recording.bin(bin_size, t0, t0 + span).shape
    n_bins = expected.shape[0]
    edges = np.append(t0 + bin_size * np.arange(n_bins), t0 + span)
    np.testing.assert_allclose(expected, _brute_force_counts(data, edges), rtol=1e-6, atol=1e-9)


_SMALL_DATA: list[SyntheticDataset] = []


def _small_data() -> SyntheticDataset:
    if not _SMALL_DATA:  # hypothesis forbids function-scoped fixtures; cache by hand
        _SMALL_DATA.append(generate(SyntheticConfig(**SMALL, seed=11)))
    return _SMALL_DATA[0]


def test_true_rate_counts_total_equals_integral_and_session_lookup() -> None:
    data = _small_data()
    total = data.true_rate_counts("synth-1", 0.1).sum(0)
    np.testing.assert_allclose(total, data.true_rates[1].astype(np.float64).sum(0) * data.rate_bin_size, rtol=1e-9)
    with pytest.raises(KeyError, match="synth-0"):
        data.true_rate_counts("nope", 0.1)
    with pytest.raises(ValueError, match="bin_size"):
        data.true_rate_counts(0, 0.0)


def test_lorenz_system() -> None:
    data = generate(SyntheticConfig(n_sessions=2, n_trials=20, latent_system="lorenz", seed=2))
    assert data.latents[0].shape[1] == 3 and data.behavior_readout.shape == (2, 3)
    trials = data.recordings[0].trials
    # Same condition, same start: trajectories agree early, then chaos and trial noise separate them.
    rows = np.flatnonzero(trials.columns["condition"] == trials.columns["condition"][0])[:2]
    onset_bins = [int(round(trials.columns["move_onset_time"][r] / data.rate_bin_size)) for r in rows]
    early = [data.latents[0][b + 10] for b in onset_bins]
    assert np.linalg.norm(early[0] - early[1]) < 1.0


@pytest.mark.parametrize(
    "overrides",
    [dict(latent_dim=2), dict(latent_dim=5), dict(latent_dim=12, behavior_dim=5), dict(inter_trial_interval=0.0)],
)
def test_unusual_shapes_generate(overrides: dict) -> None:
    data = generate(SyntheticConfig(**SMALL, **overrides))
    config = data.config
    assert data.latents[0].shape[1] == config.latent_dim
    assert data.recordings[0].behavior["hand_vel"].dim == config.behavior_dim
    assert all(np.all(np.isfinite(r)) and r.min() > 0 for r in data.true_rates)


# ---------------------------------------------------------------------- config validation
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(latent_system="ring"), "latent_system"),
        (dict(latent_system="lorenz", latent_dim=8), "latent_dim"),
        (dict(units_per_session=(50, 40)), "units_per_session"),
        (dict(split_fractions=(0.5, 0.1, 0.1)), "split_fractions"),
        (dict(move_onset_time=1.2), "move onset"),
        (dict(behavior_bin_size=0.007), "multiple"),
        (dict(heldout_fraction=1.0), "heldout_fraction"),
        (dict(rate_range=(10.0, 5.0)), "rate_range"),
        (dict(regions_per_session=(2, 5)), "regions_per_session"),
        (dict(n_trials=0), "n_trials"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**overrides)


def test_config_accepts_lists_from_yaml() -> None:
    config = SyntheticConfig(units_per_session=[10, 12], regions=["A", "B"], regions_per_session=[1, 2])
    assert config.units_per_session == (10, 12) and config.regions == ("A", "B")
    assert config.latent_dim == 8 and SyntheticConfig(latent_system="lorenz").latent_dim == 3


# ---------------------------------------------------------------------- make_recording
def test_make_recording_homogeneous_poisson() -> None:
    recording = make_recording(duration=200.0, n_units=50, rate_hz=12.0, seed=4)
    assert recording.start == 0.0 and recording.end == 200.0 and recording.n_units == 50
    assert np.all(np.diff(recording.spikes.times) >= 0) and recording.spikes.times[-1] < 200.0
    counts = recording.spike_counts()
    z = (counts - 2400) / np.sqrt(2400)
    assert np.abs(z).max() < 5 and abs(counts.sum() - 120000) < 5 * np.sqrt(120000)
    # Inter-spike intervals of a Poisson process are exponential: CV close to 1.
    isi = np.diff(recording.spikes.per_unit(50)[0])
    assert isi.std() / isi.mean() == pytest.approx(1.0, abs=0.15)
    assert make_recording(duration=5.0, n_units=3, seed=4).spikes.times.tolist() == make_recording(
        duration=5.0, n_units=3, seed=4
    ).spikes.times.tolist()


def test_make_recording_per_unit_rates_and_silence() -> None:
    recording = make_recording(duration=100.0, n_units=3, rate_hz=[0.0, 5.0, 50.0], seed=1)
    counts = recording.spike_counts()
    assert counts[0] == 0 and abs(counts[1] - 500) < 5 * np.sqrt(500) and abs(counts[2] - 5000) < 5 * np.sqrt(5000)
    silent = make_recording(duration=1.0, n_units=2, rate_hz=0.0)
    assert silent.n_spikes == 0 and silent.end == 1.0
    with pytest.raises(ValueError, match="rate_hz"):
        make_recording(n_units=2, rate_hz=-1.0)
    with pytest.raises(ValueError, match="duration"):
        make_recording(duration=0.0)


def test_make_recording_hour_long_is_fast() -> None:
    start = time.perf_counter()
    recording = make_recording(duration=3600.0, n_units=200, rate_hz=15.0, seed=0)
    elapsed = time.perf_counter() - start
    assert abs(recording.n_spikes - 10_800_000) < 5 * np.sqrt(10_800_000)
    assert elapsed < 8.0, f"1 h x 200 units x 15 Hz took {elapsed:.2f} s; target: a few seconds"
