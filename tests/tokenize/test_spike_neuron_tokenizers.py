"""Per-spike (POYO) and neuron-as-token tokenizers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tok_strategies import make_recording, spikes_in, windows

from spikefm.tokenize import NeuronConfig, NeuronTokenizer, SpikeConfig, SpikeTokenizer, TokenType, collate

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(windows(), st.booleans())
def test_spike_round_trip_is_exact(pair, start_end):
    recording, window = pair
    tokens = SpikeTokenizer(SpikeConfig(start_end_tokens=start_end, query="none"))(window)
    times, units = SpikeTokenizer.decode(tokens)
    expected_times, expected_units = spikes_in(recording, window.t0, window.t1)
    assert np.array_equal(times, expected_times) and times.dtype == np.float64
    assert np.array_equal(units, expected_units)
    assert [tokens.unit_keys[u] for u in units] == [f"{recording.session}/u{u}" for u in expected_units]
    assert tokens.values.shape == (len(tokens), 0)
    assert len(tokens) == expected_times.size + (2 * recording.n_units if start_end else 0)


@FAST
@given(windows())
def test_start_end_tokens_mark_every_unit_at_the_window_edges(pair):
    recording, window = pair
    tokens = SpikeTokenizer(SpikeConfig(query="none"))(window)
    n = recording.n_units
    head = slice(0, 2 * n)
    assert tokens.token_type[head].tolist() == [TokenType.START, TokenType.END] * n
    assert tokens.unit_index[head].tolist() == np.repeat(np.arange(n), 2).tolist()
    assert np.array_equal(tokens.timestamps[head], np.tile([0.0, window.duration], n))
    assert (tokens.token_type[2 * n :] == TokenType.SPIKE).all()


def test_spike_tokens_pack_and_carry_queries():
    rec = make_recording(np.array([0.1, 0.2, 0.7]), np.array([0, 1, 0]), 2, 2.0, behavior=True)
    tokenizer = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=4.0, behavior_keys=("hand_vel",)))
    samples = [tokenizer(rec.window(0.0, 1.0)), tokenizer(rec.window(1.0, 2.0))]
    assert samples[0].query_timestamps.tolist() == [0.0, 0.25, 0.5, 0.75]
    batch = collate(samples, pack=True)
    assert batch.cu_seqlens.tolist() == [0, 7, 11]
    assert batch.timestamps[4:7].tolist() == np.float32([0.1, 0.2, 0.7]).tolist()
    assert batch.unit_index[7:].tolist() == [2, 2, 3, 3]  # second sample's units follow the first's


@FAST
@given(windows(), st.sampled_from([0.01, 0.02, 0.05]))
def test_neuron_tokens_transpose_the_binned_counts(pair, bin_size):
    recording, window = pair
    tokens = NeuronTokenizer(NeuronConfig(bin_size=bin_size, query="none"))(window)
    counts = recording.bin(bin_size, window.t0, window.t1)
    assert np.array_equal(tokens.values, counts.T)
    assert np.array_equal(NeuronTokenizer.to_counts(tokens), counts)
    assert tokens.unit_index.tolist() == list(range(recording.n_units))
    assert np.allclose(tokens.timestamps, window.duration / 2)


def test_neuron_tokens_with_bin_queries():
    rec = make_recording(np.array([0.1]), np.array([0]), 3, 1.0, behavior=True)
    tokens = NeuronTokenizer(NeuronConfig(bin_size=0.1))(rec.window(0.0, 1.0))
    assert tokens.values.shape == (3, 10)
    assert np.allclose(tokens.query_timestamps, np.arange(10) * 0.1 + 0.05)
    assert tokens.targets["hand_vel"].shape == (10, 2)


def test_cached_edge_tokens_follow_the_window_and_stay_private():
    # START / END tokens are built once per (units, start, end); each window still gets its own
    # edges and writable arrays.
    tokenizer = SpikeTokenizer(SpikeConfig(query="none"))
    rec = make_recording(np.array([0.1, 0.7]), np.array([0, 1]), 2, 2.0)
    short, long = tokenizer(rec.window(0.0, 0.5)), tokenizer(rec.window(0.0, 1.5))
    assert short.timestamps[:4].tolist() == [0.0, 0.5, 0.0, 0.5]
    assert long.timestamps[:4].tolist() == [0.0, 1.5, 0.0, 1.5]
    again = tokenizer(rec.window(1.0, 1.5))
    again.timestamps[0] = 9.0
    assert tokenizer(rec.window(1.0, 1.5)).timestamps[0] == 0.0
