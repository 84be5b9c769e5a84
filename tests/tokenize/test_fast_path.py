"""The fast data path gives exactly the tokens and batches of the checked path.

Fast: a store read through its memory map (or h5py), checked once, windows built without
re-checking, ``Tokens.from_checked`` and collate's per-sample unit-index shift. Checked: the
in-memory recording's window, ``Tokens``' validating constructor, and the batch-wide unit-index
formula collate used before.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tok_strategies import windows

from spikefm.data.store import open_recording, write_recording
from spikefm.tokenize import SpikeConfig, SpikeTokenizer, Tokens, collate

SETTINGS = settings(max_examples=40, deadline=None)


def _assert_same(a: object, b: object, where: str) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    else:
        assert type(a) is type(b) and a == b, where


def _assert_same_tokens(fast: Tokens, reference: Tokens) -> None:
    for field in fields(Tokens):
        _assert_same(getattr(fast, field.name), getattr(reference, field.name), field.name)


@st.composite
def spike_configs(draw, has_behavior: bool) -> SpikeConfig:
    modes = ["none", "rate"] + (["behavior"] if has_behavior else [])
    return SpikeConfig(query=draw(st.sampled_from(modes)), start_end_tokens=draw(st.booleans()))


@SETTINGS
@given(pair=windows(), compression=st.sampled_from([None, "lzf"]), check=st.sampled_from(["once", "window"]),
       data=st.data())  # fmt: skip
def test_store_windows_tokenize_exactly_as_the_checked_path(pair, compression, check, data):
    recording, reference_window = pair
    tokenizer = SpikeTokenizer(data.draw(spike_configs(bool(recording.behavior))))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_recording(recording, Path(tmp) / "rec.h5", compression=compression)
        with open_recording(path, check=check) as lazy:
            lazy.window(0.0, recording.duration)  # the first read runs the full check
            window = lazy.window(reference_window.t0, reference_window.t1)
    fast = tokenizer(window)
    reference = tokenizer(reference_window)
    _assert_same_tokens(fast, reference)
    # from_checked must hold exactly what the validating constructor would make of its fields.
    _assert_same_tokens(fast, Tokens(**{f.name: getattr(fast, f.name) for f in fields(Tokens)}))


def _reference_unit_index(samples: list[Tokens], pack: bool) -> np.ndarray:
    """collate's unit index before the per-sample shift: one batch-wide where + boolean scatter."""
    lengths = np.array([len(s) for s in samples])
    unit_offsets = np.concatenate([[0], np.cumsum([s.n_units for s in samples])])
    flat = np.concatenate([s.unit_index for s in samples])
    flat = np.where(flat >= 0, flat + np.repeat(unit_offsets[:-1], lengths), -1)
    if pack:
        return flat
    out = np.full((len(samples), int(lengths.max())), -1, np.int64)
    out[np.arange(out.shape[1]) < lengths[:, None]] = flat
    return out


@st.composite
def token_samples(draw) -> Tokens:
    """Tokens with unit indices in [-1, U): -1 marks tokens without a single unit."""
    n, n_units = draw(st.integers(0, 12)), draw(st.integers(1, 5))
    unit_index = np.array(draw(st.lists(st.integers(-1, n_units - 1), min_size=n, max_size=n)), np.int64)
    return Tokens(
        values=np.zeros((n, draw(st.integers(0, 2))), np.float32),
        timestamps=np.sort(np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), float)),
        unit_index=unit_index,
        token_type=np.zeros(n, np.int64),
        mask=np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool),
        unit_keys=tuple(f"s/u{i}" for i in range(n_units)),
        session="s",
        duration=1.0,
    )


@SETTINGS
@given(samples=st.lists(token_samples(), min_size=1, max_size=5), pack=st.booleans())
def test_collate_unit_index_equals_the_batch_wide_formula(samples, pack):
    batch = collate(samples, pack=pack)
    assert batch.unit_index.dtype == torch.int64
    assert np.array_equal(batch.unit_index.numpy(), _reference_unit_index(samples, pack))
