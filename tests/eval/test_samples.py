"""Decoders are scored at the recorded behaviour samples; metric names are one per definition."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.recording import Intervals, Recording, SpikeTrains, TimeSeries, Units
from spikefm.eval.metrics import DECODE_R2, POSITION_R2, VEL_R2, decoder_metric
from spikefm.eval.samples import BehaviorSamples, at_samples, bin_centres, r2_at_samples, recorded_samples


@settings(max_examples=30, deadline=None)
@given(q=st.integers(2, 20), s=st.integers(2, 30), slope=st.floats(-3, 3), seed=st.integers(0, 99))
def test_linear_predictions_interpolate_exactly_inside_the_query_span(q, s, slope, seed):
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.uniform(0, 1, size=(1, q)), axis=1)
    pred = (slope * queries + 0.5)[..., None]  # [1, Q, 1], linear in time
    times = rng.uniform(queries.min(), queries.max(), size=s)
    samples = BehaviorSamples(np.zeros(s, np.int64), times, (slope * times + 0.5)[:, None])
    np.testing.assert_allclose(at_samples(pred, queries, samples), samples.values, atol=1e-9)


def test_at_samples_respects_windows_masks_and_edges():
    pred = np.array([[[0.0], [1.0], [99.0]], [[5.0], [7.0], [0.0]]])  # [2, 3, 1]
    queries = np.array([[0.1, 0.3, 0.5], [0.1, 0.3, 0.5]])
    mask = np.array([[True, True, False], [True, True, True]])
    samples = BehaviorSamples(np.array([0, 0, 1, 1]), np.array([0.2, 0.9, 0.0, 0.2]), np.zeros((4, 1)))
    out = at_samples(pred, queries, samples, mask)[:, 0]
    np.testing.assert_allclose(out, [0.5, 1.0, 5.0, 6.0])  # masked query ignored; flat beyond the last / first


def _recording(sample_rate: float, freq: float = 1.0) -> Recording:
    t = np.arange(0, 10, 1 / sample_rate)
    return Recording(
        session="s", spikes=SpikeTrains(np.array([0.5, 1.5]), np.array([0, 0])), units=Units(ids=np.array(["u0"])),
        behavior={"hand_vel": TimeSeries(t, np.sin(freq * t)[:, None])},
    )


def test_recorded_samples_are_the_series_samples_inside_each_window():
    rec = _recording(40.0)
    samples = recorded_samples(rec, np.array([1.0, 5.0]), 0.5, "hand_vel")
    assert samples.trial.tolist() == [0] * 20 + [1] * 20
    np.testing.assert_allclose(samples.times[:20], np.arange(20) / 40.0, atol=1e-9)
    np.testing.assert_allclose(samples.values[:, 0], np.sin(np.concatenate([1 + np.arange(20) / 40, 5 + np.arange(20) / 40])))


def test_interpolated_targets_would_flatter_a_decoder():
    """Scoring a bin-centre predictor against the target interpolated to the bin centres rates it perfect;
    at the recorded samples it is charged for what it cannot resolve between bins."""
    rec = _recording(200.0, freq=6.0)
    starts = np.array([0.0, 2.0, 4.0])
    samples = recorded_samples(rec, starts, 1.0, "hand_vel")
    centres = bin_centres(3, 5, 0.2)  # coarse 200 ms bins
    truth_at_centres = np.sin(6.0 * (starts[:, None] + centres))[..., None]
    assert r2_at_samples(truth_at_centres, centres, samples) < 0.97


def test_metric_names():
    assert decoder_metric("hand_vel") == DECODE_R2 == "decode R2"
    assert decoder_metric("position") == decoder_metric("finger_pos") == POSITION_R2
    assert VEL_R2 == "vel R2"
    with pytest.raises(ValueError, match="BehaviorSamples"):
        BehaviorSamples(np.zeros(2, np.int64), np.zeros(3), np.zeros((2, 1)))


def test_take_resamples_trials_with_their_recorded_samples():
    from spikefm.eval.trials import trial_arrays

    rec = _recording(40.0)
    rec = replace(rec, trials=Intervals(np.array([0.0, 2.0, 4.0]), np.array([1.0, 3.0, 5.0])))
    arrays = trial_arrays(rec, split=None, bin_size=0.1, window=1.0)
    boot = arrays.take(np.array([2, 0, 2]))
    np.testing.assert_array_equal(boot.starts, [4.0, 0.0, 4.0])
    assert boot.samples.trial.tolist() == [0] * 40 + [1] * 40 + [2] * 40
    np.testing.assert_allclose(boot.samples.values[:40], arrays.samples.values[arrays.samples.trial == 2])
