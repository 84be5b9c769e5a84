"""Neuroformer event pairs: decode recovers units exactly and times to half a dt step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tok_strategies import make_recording, spikes_in, windows

from spikefm.data.recording import DataError
from spikefm.tokenize import EventConfig, EventTokenizer, TokenType

FAST = settings(max_examples=40, deadline=None)
CONFIGS = st.builds(
    EventConfig,
    resolution=st.sampled_from([0.001, 0.005, 0.01]),
    current_window=st.sampled_from([0.02, 0.05]),
    past_window=st.sampled_from([0.0, 0.03, 0.05, 0.2]),
)


@FAST
@given(windows(), CONFIGS, st.booleans())
def test_decode_recovers_units_exactly_and_times_within_half_a_step(pair, config, include_past):
    recording, window = pair
    tokenizer = EventTokenizer(config)
    tokens = tokenizer(window)
    times, units = tokenizer.decode(tokens, include_past=include_past)
    rel, expected_units = spikes_in(recording, window.t0, window.t1)
    first = window.duration - config.current_window - (config.past_window if include_past else 0.0)
    keep = rel >= first
    assert np.array_equal(units, expected_units[keep])
    assert np.all(np.abs(times - rel[keep]) <= config.resolution / 2 + 1e-9)


@FAST
@given(windows(), CONFIGS)
def test_sequence_layout_and_vocabularies(pair, config):
    recording, window = pair
    tokenizer = EventTokenizer(config)
    tokens = tokenizer(window)
    kinds, dt = tokens.token_type, tokens.extras["dt_token"]
    specials = EventTokenizer.id_special_tokens(recording.n_units)
    (sos,), (eos,) = np.flatnonzero(kinds == TokenType.START), np.flatnonzero(kinds == TokenType.END)
    assert eos == len(tokens) - 1
    assert (kinds[:sos] == TokenType.CONTEXT).all() and (kinds[sos + 1 : eos] == TokenType.SPIKE).all()
    assert tokens.values[sos] == specials["sos"] and tokens.values[eos] == specials["eos"]
    assert dt[sos] == config.dt_sos and dt[eos] == config.dt_eos
    spikes = np.isin(kinds, [TokenType.SPIKE, TokenType.CONTEXT])
    assert dt[spikes].min(initial=0) >= 0 and dt[spikes].max(initial=0) < config.n_offsets
    assert tokens.values[spikes].max(initial=0) < recording.n_units
    assert np.array_equal(tokens.values[spikes], tokens.unit_index[spikes])
    assert (tokens.unit_index[~spikes] == -1).all()
    assert config.dt_vocab_size == config.n_offsets + 3 and specials["pad"] == recording.n_units + 2


def test_spikes_on_the_grid_decode_exactly_and_neuroformer_defaults():
    config = EventConfig()  # 10 ms resolution, 50 ms current and past windows
    assert config.n_offsets == 6  # offsets 0, 10, ..., 50 ms
    times = np.array([0.00, 0.03, 0.06, 0.09])
    rec = make_recording(times, np.array([0, 1, 2, 1]), 3, 1.0)
    tokenizer = EventTokenizer(config)
    tokens = tokenizer(rec.window(0.0, 0.1))
    decoded, units = tokenizer.decode(tokens, include_past=True)
    assert np.allclose(decoded, times, atol=1e-9) and units.tolist() == [0, 1, 2, 1]
    assert tokens.extras["dt_token"].tolist() == [0, 3, 6, 1, 4, 7]


def test_spikes_before_the_past_window_are_dropped_and_limits_keep_the_latest():
    times = np.array([0.1, 0.82, 0.85, 0.91, 0.93, 0.97])
    rec = make_recording(times, np.arange(6) % 2, 2, 1.0)
    full = EventTokenizer(EventConfig())(rec.window(0.0, 1.0))
    # current chunk [0.95, 1), past chunk [0.9, 0.95): 0.1, 0.82 and 0.85 are dropped
    assert np.allclose(full.timestamps[full.token_type == TokenType.CONTEXT], [0.91, 0.93])
    assert np.allclose(full.timestamps[full.token_type == TokenType.SPIKE], [0.97])
    tokenizer = EventTokenizer(EventConfig(current_window=0.1, past_window=0.2, max_current_tokens=2,
                                           max_past_tokens=1))
    tokens = tokenizer(rec.window(0.0, 1.0))
    assert np.allclose(tokens.timestamps[tokens.token_type == TokenType.CONTEXT], [0.85])
    assert np.allclose(tokens.timestamps[tokens.token_type == TokenType.SPIKE], [0.93, 0.97])


def test_window_shorter_than_the_current_chunk_fails_loudly():
    rec = make_recording(np.array([0.01]), np.array([0]), 1, 1.0)
    with pytest.raises(DataError, match="shorter than EventConfig.current_window"):
        EventTokenizer(EventConfig(current_window=0.05))(rec.window(0.0, 0.04))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(resolution=0.0), "resolution"),
        (dict(current_window=-1.0), "current_window"),
        (dict(past_window=-0.1), "past_window"),
        (dict(resolution=0.1, current_window=0.05), "coarser than current_window"),
        (dict(max_current_tokens=-1), "max_current_tokens"),
        (dict(max_past_tokens=2.5), "max_past_tokens"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EventConfig(**kwargs)
