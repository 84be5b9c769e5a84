"""A self-supervised model's rates decoded by a Wiener filter, as a protocol decoding row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.bench import SyntheticSettings, _models
from spikefm.eval.candidates import Task, task_arrays
from spikefm.eval.evaluate import predict
from spikefm.eval.protocol import Budget
from spikefm.eval.rates_decoder_candidate import RatesDecoderCandidate
from spikefm.eval.sealed import seal

DECODE = Task("decode R2", window=1.0, bin_size=0.02, behavior_key="hand_vel")


@pytest.fixture(scope="module")
def dev():
    rec = SyntheticSettings(n_trials=24, units=(10, 10)).draw(7)
    return seal(rec, name="r")[0]


def test_only_rate_models_and_decoding_tasks() -> None:
    with pytest.raises(ValueError, match="poyo decodes behaviour itself"):
        RatesDecoderCandidate("poyo", DECODE)
    row = RatesDecoderCandidate("ndt1", DECODE)
    assert row.name == "ndt1 rates -> wiener acausal" and not row.causal  # NDT1 reads its whole window
    assert row.decoder.window_bins == DECODE.window_bins  # the filter reads no more than the model
    assert {"lr", "steps", "ema_decay", "lags", "leads", "alpha"} <= set(row.default())
    assert row.key()["kind"] == "model"  # a model row: compared with the baselines, never used as one


def test_the_filter_decodes_the_models_rates(dev, tmp_path: Path) -> None:
    row = RatesDecoderCandidate("ndt1", DECODE, max_steps=3, batch_size=8, out_dir=tmp_path)
    fitted = row.fit(dev, row.default(), seed=0)
    arrays = task_arrays(DECODE, dev, "val")
    rates = predict(fitted["model"], fitted["tokenizer"], dev, split="val", window=1.0).rates
    inputs = row._rate_arrays(fitted, dev, "val")
    np.testing.assert_allclose(inputs.counts, rates)  # the filter reads rates, not the recorded counts
    assert not np.array_equal(inputs.counts, arrays.counts)
    scores = row._scores(fitted, dev, "val")
    expected = fitted["decoder"].predict(inputs).reshape(*arrays.counts.shape[:2], -1)
    assert np.isfinite(scores.score()) and np.isfinite(expected).all()
    # a filter fitted on other inputs decodes differently: the score depends on the model's rates
    other = row.fit(dev, {**row.default(), "steps": 1}, seed=1)
    assert not np.allclose(row._rate_arrays(other, dev, "val").counts, inputs.counts)


def test_bins_that_do_not_line_up_are_a_clear_error(dev, tmp_path: Path) -> None:
    task = Task("decode R2", window=1.0, bin_size=0.05, behavior_key="hand_vel")
    row = RatesDecoderCandidate("ndt1", task, max_steps=1, batch_size=8, out_dir=tmp_path)  # NDT1 tiny: 20 ms bins
    with pytest.raises(ValueError, match="set the model's bin_size to the task's 0.05 s"):
        row.fit(dev, row.default(), seed=0)


def test_bench_builds_rates_rows_at_the_tasks_bins() -> None:
    task = Task("decode R2", window=1.0, bin_size=0.05, behavior_key="hand_vel")
    (row,) = _models(["ndt1:rates"], lambda m: task, Budget(trials=1, seeds=1, max_steps=2, bootstrap=10),
                     Path("unused"))
    assert isinstance(row, RatesDecoderCandidate) and row.overrides["bin_size"] == 0.05
