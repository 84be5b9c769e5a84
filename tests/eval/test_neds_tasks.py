"""NEDS encoding / decoding scores: window and bin alignment, the behaviour GLM, the CLI entry point."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.metrics import bits_per_spike, co_bps
from spikefm.eval.neds_tasks import _behavior_features, behavior_glm_bps, main, neds_rows, predict_neds, score_neds
from spikefm.eval.trials import trial_arrays
from spikefm.models.registry import build_config, get_spec


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticConfig(n_sessions=2, units_per_session=(14, 18), n_trials=30, seed=5))


class _Echo(nn.Module):
    """Decodes the true behaviour; rates = counts + 0.5 in decoding mode, a constant 0.3 in encoding mode."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, batch, mode=None):
        counts = batch.values.float()
        rates = counts + 0.5 if mode == "decoding" else torch.full_like(counts, 0.3)
        return {"log_rates": rates.log(), "behavior": batch.targets["hand_vel"].clone()}


def test_scores_align_with_the_trial_arrays(data):
    rec = data.recordings[0]
    tokenizer = get_spec("neds").make_tokenizer(build_config("neds", "tiny"))
    predictions = predict_neds(_Echo(), tokenizer, rec, split="test", batch_size=4)
    arrays = trial_arrays(rec, split="test", bin_size=0.02, window=1.0)
    np.testing.assert_array_equal(predictions.counts, arrays.counts)
    np.testing.assert_allclose(predictions.behavior_true, arrays.behavior, atol=1e-6)
    scores = score_neds(predictions)
    # the echo is exact at the bin centres; it is scored at the recorded (finer) samples, interpolated
    assert 0.95 < scores["decode R2"] < 1.0
    assert score_neds(replace(predictions, samples=None))["decode R2"] == pytest.approx(1.0)
    expected = bits_per_spike(np.full(arrays.counts.shape, 0.3), arrays.counts)
    assert scores["enc bps"] == pytest.approx(expected, abs=1e-5)
    held = rec.units.heldout
    assert scores["co-bps"] == pytest.approx(co_bps(arrays.counts[..., held] + 0.5, arrays.counts[..., held]), abs=1e-5)


def test_behaviour_features_hold_past_and_future_offsets():
    behavior = np.arange(2 * 6 * 1, dtype=float).reshape(2, 6, 1) + 1  # trial 0: 1..6, trial 1: 7..12
    features = _behavior_features(behavior, 2).reshape(2, 6, -1)  # columns: t, t-1, t-2, t+1, t+2
    np.testing.assert_array_equal(features[0, 2], [3, 2, 1, 4, 5])
    np.testing.assert_array_equal(features[1, 5], [12, 11, 10, 0, 0])  # zeros beyond the trial's end
    np.testing.assert_array_equal(features[1, 0], [7, 0, 0, 8, 9])


def test_behaviour_glm_beats_the_null_and_the_oracle_beats_it(data):
    rec = data.recordings[0]
    train, test = (trial_arrays(rec, split=s, bin_size=0.02, window=1.0) for s in ("train", "test"))
    glm = behavior_glm_bps(train, test)
    true = np.stack([data.true_rate_counts(0, 0.02, t0, t0 + 1.0) for t0 in test.starts])
    assert 0.0 < glm < bits_per_spike(true, test.counts)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is small and shared
    yield
    torch.set_num_threads(threads)


def test_rows_of_a_real_model_and_the_command_line(data, tmp_path, one_thread):
    from spikefm.train.config import RunConfig
    from spikefm.train.fit import fit

    config = RunConfig.from_dict({
        "name": "neds_smoke", "model": {"name": "neds", "preset": "tiny"},
        "data": {"synthetic": {"n_sessions": 2, "units_per_session": [14, 18], "n_trials": 30, "seed": 5}},
        "trainer": {"max_steps": 2, "batch_size": 4, "val_every": 2, "out_dir": str(tmp_path), "progress": False,
                    "accelerator": "cpu"},
    })  # fmt: skip
    result = fit(config)
    tokenizer = get_spec("neds").make_tokenizer(build_config("neds", "tiny"))
    rows = neds_rows(result.module.model, tokenizer, result.recordings[:1], dataset=result.dataset)
    session = result.recordings[0].session
    assert set(rows) == {(session, "neds"), (session, "behaviour GLM"), (session, "oracle")}
    assert set(rows[(session, "neds")]) == {"decode R2", "co-bps", "enc bps", "enc bps per-neuron"}
    assert all(np.isfinite(v) for row in rows.values() for v in row.values())
    table = main([str(result.checkpoint)])
    assert "enc bps" in table and "behaviour GLM" in table
