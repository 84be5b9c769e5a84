"""Neuroformer's chunk-by-chunk behaviour decoding under the protocol, against filters that read its span."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.bench import CHUNK_DECODE, SyntheticSettings, _baselines, _models
from spikefm.eval.candidates import Task, task_arrays
from spikefm.eval.chunk_decode_candidate import ChunkDecodeCandidate, chunk_decode_baselines, chunk_decode_task
from spikefm.eval.protocol import Budget
from spikefm.eval.sealed import seal


def test_the_baselines_read_at_most_the_models_span() -> None:
    task = chunk_decode_task()
    assert task.bin_size == pytest.approx(0.01)  # a fifth of the 50 ms chunk
    rows = chunk_decode_baselines(task)
    assert rows[1].info.endswith("(at most 100 ms in all, what the model reads)")
    causal, acausal = (b.baseline for b in rows)
    assert causal.causal and max(causal.lags) == 10 and causal.name == "wiener causal 100 ms"
    assert not acausal.causal and max(acausal.leads) == 5  # one chunk ahead at most
    for lags in acausal.lags:
        for leads in acausal.leads:
            acausal.params = {"lags": lags, "leads": leads, "alpha": 1.0}
            read_lags, read_leads = acausal._lags_leads()
            assert read_lags + read_leads <= 10  # past 50 ms + current 50 ms, in 10 ms bins


def test_it_decodes_the_recorded_samples_the_baselines_are_scored_on(tmp_path: Path) -> None:
    rec = SyntheticSettings(n_trials=16, units=(8, 8)).draw(3)
    dev, _ = seal(rec, name="c")
    task = chunk_decode_task(window=1.0)
    row = ChunkDecodeCandidate("neuroformer", task, max_steps=2, batch_size=8, out_dir=tmp_path, sampler="random")
    assert row.name == "neuroformer decode" and not row.causal and row.train_window == pytest.approx(0.1)
    scores = row._scores(row.fit(dev, row.default(), seed=0), dev, "val")
    samples = task_arrays(task, dev, "val").samples
    assert scores.n == len(np.unique(samples.trial)) and scores.pred.shape == scores.truth.shape
    np.testing.assert_array_equal(np.bincount(scores.trial), np.bincount(samples.trial))  # same samples per trial
    np.testing.assert_allclose(scores.truth, samples.values, rtol=1e-6)  # in the same order
    assert np.isfinite(scores.score())


def test_the_bench_runs_it_alone_with_its_own_baselines() -> None:
    decode = Task("decode R2", window=1.0, bin_size=0.02, behavior_key="hand_vel")
    with pytest.raises(ValueError, match="sitting of its own, not with \\['poyo'\\]"):
        _baselines(decode, [CHUNK_DECODE, "poyo"])
    names = [b.name for b in _baselines(decode, [CHUNK_DECODE])]
    assert names == ["wiener causal 100 ms", "wiener acausal 100 ms"]
    (row,) = _models([CHUNK_DECODE], lambda m: decode, Budget(trials=1, seeds=1, max_steps=2, bootstrap=10),
                     Path("unused"))
    assert isinstance(row, ChunkDecodeCandidate) and row.task.bin_size == pytest.approx(0.01)
