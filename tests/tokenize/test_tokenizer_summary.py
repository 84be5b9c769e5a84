"""The inspect table (tokenizer_table) and a smoke run of benchmarks/tokenize.py."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
from tok_strategies import make_recording

from spikefm.data.recording import DataError
from spikefm.tokenize import tokenizer_table

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "tokenize.py"


def _poisson_recording(n_units: int = 40, rate: float = 10.0, duration: float = 20.0):
    rng = np.random.default_rng(1)
    counts = rng.poisson(rate * duration, n_units)
    times = rng.uniform(0, duration, counts.sum())
    return make_recording(times, np.repeat(np.arange(n_units), counts), n_units, duration, behavior=True)


def test_table_rows_match_the_tokenizers_arithmetic():
    rec = _poisson_recording()
    rows = {row["tokenizer"]: row for row in tokenizer_table(rec, window_length=1.0, n_windows=16)}
    assert set(rows) == {"binned (NDT1)", "patch (NDT2)", "spike (POYO)", "neuron (STNDT)", "event (Neuroformer)"}
    for row in rows.values():
        assert row["len_p5"] <= row["len_p50"] <= row["len_p95"] <= row["len_max"]
        assert 0.0 <= row["zero_fraction"] <= 1.0
    binned, patch, spike = rows["binned (NDT1)"], rows["patch (NDT2)"], rows["spike (POYO)"]
    assert binned["tokens_per_s"] == 50.0 and binned["entries_per_token"] == 40
    assert patch["tokens_per_s"] == 100.0 and patch["entries_per_token"] == 32  # 40 units -> 2 groups
    assert rows["neuron (STNDT)"]["tokens_per_s"] == 40.0
    # 400 spikes/s + 80 START/END tokens per 1 s window, all within Poisson noise
    assert spike["tokens_per_s"] == pytest.approx(480.0, rel=0.05)
    assert spike["zero_fraction"] == pytest.approx(80.0 / spike["tokens_per_s"], rel=0.05)
    # 20 ms bins at 10 Hz: P(count = 0) = exp(-0.2)
    assert binned["zero_fraction"] == pytest.approx(np.exp(-0.2), abs=0.02)
    assert patch["zero_fraction"] == pytest.approx(binned["zero_fraction"], abs=1e-12)
    # event pairs: ~400 spikes/s in each 50 ms current chunk + SOS/EOS, stepping by 50 ms
    assert rows["event (Neuroformer)"]["tokens_per_s"] == pytest.approx(2 * 400 + 40, rel=0.1)


def test_table_is_seeded_and_rejects_short_recordings():
    rec = _poisson_recording(duration=5.0)
    assert tokenizer_table(rec, n_windows=4, seed=3) == tokenizer_table(rec, n_windows=4, seed=3)
    with pytest.raises(DataError, match="shorter than window_length"):
        tokenizer_table(rec, window_length=10.0)
    with pytest.raises(ValueError, match="n_windows"):
        tokenizer_table(rec, n_windows=0)


def test_benchmark_script_runs_and_writes_its_report(tmp_path):
    module = runpy.run_path(str(BENCHMARK), run_name="benchmark_under_test")
    out = tmp_path / "tokenize.md"
    results = module["main"](["--duration", "12", "--units", "20", "--repeats", "1", "--event-seconds", "2",
                              "--batch-size", "4", "--out", str(out), "--no-torch-brain"])
    text = out.read_text()
    assert "| spike (POYO), padded |" in text and "## Targets" in text and "torch 2" in text
    assert all(r.best_s > 0 and r.tokens > 0 for r in results)
    assert results[0].windows == 12 and results[0].spikes > 0
