"""Tokens validation, queries / targets, and collate (padded vs packed, batch-level unit index)."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tok_strategies import make_recording, windows

from spikefm.data.recording import DataError
from spikefm.tokenize import (
    BinnedConfig,
    BinnedTokenizer,
    EventConfig,
    EventTokenizer,
    NeuronConfig,
    NeuronTokenizer,
    PatchConfig,
    PatchTokenizer,
    SpikeConfig,
    SpikeTokenizer,
    Tokens,
    TokenType,
    collate,
)
from spikefm.tokenize.base import cached_unit_keys

FAST = settings(max_examples=30, deadline=None)


def _tokens(n: int = 3, n_units: int = 2, **overrides) -> Tokens:
    fields = dict(
        values=np.zeros((n, 0), np.float32),
        timestamps=np.linspace(0.0, 0.5, n),
        unit_index=np.arange(n) % n_units,
        token_type=np.zeros(n, np.int64),
        mask=np.ones(n, bool),
        unit_keys=tuple(f"s/u{i}" for i in range(n_units)),
        session="s",
        duration=1.0,
    )
    fields.update(overrides)
    return Tokens(**fields)


def _all_tokenizers():
    return [
        BinnedTokenizer(BinnedConfig(query="none", n_classes=4)),
        PatchTokenizer(PatchConfig(query="none", neurons_per_patch=3, bins_per_patch=2)),
        SpikeTokenizer(SpikeConfig(query="none")),
        NeuronTokenizer(NeuronConfig(query="none")),
        EventTokenizer(EventConfig(current_window=0.03, past_window=0.02)),
    ]


# ---------------------------------------------------------------------------- Tokens
def test_tokens_coerces_dtypes_and_reports_length():
    tokens = _tokens(unit_index=[0, 1, 0], token_type=[0, 1, 2], mask=[1, 1, 0])
    assert len(tokens) == 3 and tokens.n_units == 2
    assert tokens.unit_index.dtype == np.int64 and tokens.mask.dtype == bool
    assert tokens.mask.tolist() == [True, True, False]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(values=np.zeros((2, 0))), "values"),
        (dict(unit_index=np.zeros(4, np.int64)), "unit_index"),
        (dict(unit_index=np.array([0, 1, 2])), r"unit_index spans \[0, 2\]"),
        (dict(unit_index=np.array([-2, 0, 0])), "unit_index spans"),
        (dict(token_type=np.zeros((3, 1), np.int64)), "token_type must be 1-D"),
        (dict(timestamps=np.zeros((3, 1))), "timestamps must be 1-D"),
        (dict(extras={"x": np.zeros(2)}), r"extras\['x'\]"),
        (dict(unit_extras={"heldout": np.zeros(3, bool)}), r"unit_extras\['heldout'\]"),
        (dict(targets={"v": np.zeros((3, 2))}), "targets given without query_timestamps"),
        (dict(query_timestamps=np.zeros(2), targets={"v": np.zeros((3, 2))}), r"targets\['v'\]"),
        (dict(query_timestamps=np.zeros(2), targets={"v": np.zeros(2)}), r"must be \[Q, D\]"),
    ],
)
def test_tokens_rejects_inconsistent_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        _tokens(**overrides)


# ---------------------------------------------------------------------------- queries
def test_rate_queries_are_k_over_rate_and_linear_behaviour_interpolates_exactly():
    rec = make_recording(np.array([0.1]), np.array([0]), 1, 2.0, behavior=True)
    tokens = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=50.0))(rec.window(0.5, 1.5))
    assert np.allclose(tokens.query_timestamps, np.arange(50) / 50.0)
    absolute = tokens.query_timestamps + 0.5
    # hand_vel = (2t + 1, -t) sampled at 100 Hz: interpolation of a linear signal is exact
    expected = np.stack([2 * absolute + 1, -absolute], axis=1)
    assert np.allclose(tokens.targets["hand_vel"], expected, atol=1e-5)
    assert tokens.targets["hand_vel"].dtype == np.float32


def test_behavior_queries_are_the_window_samples_exactly():
    rec = make_recording(np.array([0.1]), np.array([0]), 1, 1.0, behavior=True)
    window = rec.window(0.2, 0.6)
    tokens = SpikeTokenizer(SpikeConfig(query="behavior"))(window)
    series = window.recording.behavior["hand_vel"]
    assert np.array_equal(tokens.query_timestamps, series.timestamps)
    assert np.array_equal(tokens.targets["hand_vel"], series.values.astype(np.float32))


def test_bin_queries_sit_at_bin_centres_and_edges_clamp_to_nearest_sample():
    rec = make_recording(np.array([0.1]), np.array([0]), 1, 1.0, behavior=True)
    tokens = BinnedTokenizer(BinnedConfig(bin_size=0.1))(rec.window(0.0, 1.0))
    assert np.allclose(tokens.query_timestamps, np.arange(10) * 0.1 + 0.05)
    assert np.allclose(tokens.query_timestamps, tokens.timestamps)
    # the last centre (0.95) lies between samples 0.95 and 0.96: exact; beyond the last sample clamps
    late = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=1000.0))(rec.window(0.0, 1.0))
    assert np.allclose(late.targets["hand_vel"][-1], [2 * 0.99 + 1, -0.99], atol=1e-5)


def test_window_without_behaviour_samples_gives_nan_targets():
    rec = make_recording(np.array([0.1]), np.array([0]), 1, 1.0, behavior=True)
    shifted = replace(rec, end=3.0)
    tokens = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=10.0))(shifted.window(2.0, 3.0))
    assert tokens.targets["hand_vel"].shape == (10, 2) and np.isnan(tokens.targets["hand_vel"]).all()


def test_missing_behaviour_key_and_empty_behavior_query_fail_loudly():
    rec = make_recording(np.array([0.1]), np.array([0]), 1, 1.0)
    with pytest.raises(DataError, match="no behaviour \\['hand_vel'\\]"):
        SpikeTokenizer(SpikeConfig(behavior_keys=("hand_vel",)))(rec.window(0.0, 1.0))
    with pytest.raises(DataError, match="query='behavior' needs a behaviour"):
        SpikeTokenizer(SpikeConfig(query="behavior"))(rec.window(0.0, 1.0))
    tokens = SpikeTokenizer(SpikeConfig())(rec.window(0.0, 1.0))  # all (no) keys: queries, no targets
    assert tokens.query_timestamps.shape == (100,) and tokens.targets == {}


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SpikeConfig(query="bins"), "query must be one of"),
        (lambda: SpikeConfig(query_rate_hz=0.0), "query_rate_hz"),
        (lambda: SpikeConfig(behavior_keys="hand_vel"), "tuple of names"),
        (lambda: EventConfig(query="bins"), "query must be one of"),
        (lambda: BinnedConfig(query="sometimes"), "query must be one of"),
    ],
)
def test_query_config_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------------- unit keys
def test_cached_unit_keys_match_recording_and_follow_the_session():
    rec = make_recording(np.array([0.1]), np.array([0]), 3, 1.0, session="a")
    assert cached_unit_keys(rec) == tuple(rec.unit_keys()) == ("a/u0", "a/u1", "a/u2")
    renamed = replace(rec, session="b")  # shares the units table object
    assert renamed.units is rec.units
    assert cached_unit_keys(renamed) == ("b/u0", "b/u1", "b/u2")
    assert cached_unit_keys(rec.window(0.0, 0.5).recording) == ("a/u0", "a/u1", "a/u2")


# ---------------------------------------------------------------------------- collate
def _check_padded_matches_packed(samples: list[Tokens]) -> None:
    padded, packed = collate(samples), collate(samples, pack=True)
    lengths = [len(s) for s in samples]
    assert padded.lengths.tolist() == lengths == packed.lengths.tolist()
    assert packed.cu_seqlens.dtype == torch.int32
    assert packed.cu_seqlens.tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    assert packed.sample_index.tolist() == np.repeat(np.arange(len(samples)), lengths).tolist()
    assert padded.mask.sum(1).tolist() == lengths and not padded.packed and packed.packed
    assert padded.max_seqlen == packed.max_seqlen == max(lengths)
    for b, sample in enumerate(samples):
        lo, hi, n = int(packed.cu_seqlens[b]), int(packed.cu_seqlens[b + 1]), len(sample)
        for name in ("timestamps", "unit_index", "token_type", "mask"):
            assert torch.equal(getattr(padded, name)[b, :n], getattr(packed, name)[lo:hi]), name
        trail = tuple(slice(0, s) for s in sample.values.shape[1:])
        assert np.array_equal(padded.values[(b, slice(0, n), *trail)].numpy(), sample.values)
        assert np.array_equal(packed.values[(slice(lo, hi), *trail)].numpy(), sample.values)
        assert not padded.mask[b, n:].any() and (padded.unit_index[b, n:] == -1).all()
        for key, value in sample.extras.items():
            trail = tuple(slice(0, s) for s in value.shape[1:])
            assert np.array_equal(padded.extras[key][(b, slice(0, n), *trail)].numpy(), value)


def _check_unit_index_maps_to_same_keys(samples: list[Tokens]) -> None:
    batch = collate(samples, pack=True)
    assert len(batch.unit_keys) == sum(s.n_units for s in samples)
    flat = batch.unit_index.numpy()
    for b, sample in enumerate(samples):
        lo, hi = int(batch.cu_seqlens[b]), int(batch.cu_seqlens[b + 1])
        mine, theirs = flat[lo:hi], sample.unit_index
        assert np.array_equal(mine == -1, theirs == -1)
        keys = [batch.unit_keys[i] for i in mine[mine >= 0]]
        assert keys == [sample.unit_keys[i] for i in theirs[theirs >= 0]]
        assert batch.unit_offsets[b + 1] - batch.unit_offsets[b] == sample.n_units
        u0, u1 = int(batch.unit_offsets[b]), int(batch.unit_offsets[b + 1])
        assert np.array_equal(batch.unit_extras["heldout"][u0:u1].numpy(), sample.unit_extras["heldout"])


@FAST
@given(st.lists(windows(), min_size=1, max_size=4), st.integers(0, 4))
def test_collate_padded_and_packed_agree_for_every_tokenizer(pairs, which):
    tokenizer = _all_tokenizers()[which]
    samples = [tokenizer(w) for _, w in pairs]
    _check_padded_matches_packed(samples)
    _check_unit_index_maps_to_same_keys(samples)


def test_collate_pads_trailing_dims_across_sessions_with_different_unit_counts():
    a = make_recording(np.array([0.01, 0.02]), np.array([0, 1]), 2, 1.0, session="a")
    b = make_recording(np.array([0.03]), np.array([4]), 5, 1.0, session="b")
    samples = [BinnedTokenizer(BinnedConfig(query="none"))(r.window(0.0, 0.1)) for r in (a, b)]
    padded = collate(samples)
    assert padded.values.shape == (2, 5, 5)
    assert padded.values[0, :, 2:].abs().sum() == 0
    assert padded.unit_keys == ("a/u0", "a/u1", "b/u0", "b/u1", "b/u2", "b/u3", "b/u4")
    assert collate(samples, pack=True).values.shape == (10, 5)


def test_collate_queries_are_padded_with_their_own_mask():
    rec = make_recording(np.array([0.1]), np.array([0]), 2, 2.0, behavior=True, regions=True)
    tokenizer = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=10.0))
    samples = [tokenizer(rec.window(0.0, 1.0)), tokenizer(rec.window(1.0, 1.5))]
    batch = collate(samples)
    assert batch.query_timestamps.shape == (2, 10) and batch.query_timestamps.dtype == torch.float32
    assert batch.query_mask.sum(1).tolist() == [10, 5]
    assert batch.targets["hand_vel"].shape == (2, 10, 2)
    assert torch.equal(batch.targets["hand_vel"][1, :5], torch.from_numpy(samples[1].targets["hand_vel"]))
    assert (batch.targets["hand_vel"][1, 5:] == 0).all()
    assert batch.unit_extras["region"].tolist() == ["PMd", "M1", "PMd", "M1"]
    assert batch.sessions == ("s1", "s1") and torch.allclose(batch.duration, torch.tensor([1.0, 0.5]))


def test_collate_rejects_mixed_samples_and_empty_batches():
    rec = make_recording(np.array([0.1]), np.array([0]), 1, 1.0, behavior=True)
    window = rec.window(0.0, 1.0)
    with_queries = SpikeTokenizer(SpikeConfig())(window)
    without = SpikeTokenizer(SpikeConfig(query="none"))(window)
    binned = BinnedTokenizer(BinnedConfig(query="none", n_classes=3))(window)
    with pytest.raises(ValueError, match="at least one sample"):
        collate([])
    with pytest.raises(ValueError, match="some samples have query_timestamps"):
        collate([with_queries, without])
    with pytest.raises(ValueError, match="extras"):
        collate([binned, without])


def test_batch_to_moves_every_tensor_and_keeps_strings():
    rec = make_recording(np.array([0.1, 0.2]), np.array([0, 1]), 2, 1.0, behavior=True, regions=True)
    batch = collate([SpikeTokenizer()(rec.window(0.0, 1.0))], pack=True)
    moved = batch.to("meta")
    assert moved.timestamps.device.type == "meta" and moved.cu_seqlens.device.type == "meta"
    assert moved.targets["hand_vel"].device.type == "meta"
    assert moved.unit_extras["heldout"].device.type == "meta"
    assert isinstance(moved.unit_extras["region"], np.ndarray)
    assert batch.timestamps.device.type == "cpu" and len(moved) == 1


def test_token_types_are_documented_constants():
    assert [int(t) for t in TokenType] == [0, 1, 2, 3]
    assert TokenType.SPIKE == 0 and TokenType.START == 1 and TokenType.END == 2


def test_tokens_and_batches_pickle_for_loader_workers():
    rec = make_recording(np.array([0.1, 0.2]), np.array([0, 1]), 2, 1.0, behavior=True)
    tokens = SpikeTokenizer()(rec.window(0.0, 1.0))
    again = pickle.loads(pickle.dumps(tokens))
    assert np.array_equal(again.timestamps, tokens.timestamps) and again.unit_keys == tokens.unit_keys
    assert np.array_equal(again.targets["hand_vel"], tokens.targets["hand_vel"])
    batch = pickle.loads(pickle.dumps(collate([tokens, again], pack=True)))
    assert batch.unit_keys == tokens.unit_keys * 2 and batch.cu_seqlens.tolist() == [0, 6, 12]
