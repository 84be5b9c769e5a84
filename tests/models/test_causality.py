"""Every model declares whether it is causal, and the declaration holds: a causal model's outputs before time t do
not change when the spikes after t are removed; an acausal one's do."""

import dataclasses
from functools import partial

import numpy as np
import pytest
import torch

from spikefm.data.recording import SpikeTrains
from spikefm.models.registry import build_config, get_spec, is_causal, list_models
from spikefm.tokenize.base import collate

CUT = 0.5  # s into the window: spikes after it are dropped


def _drop_after(window, cut: float):
    spikes = window.recording.spikes
    keep = spikes.times < cut
    recording = dataclasses.replace(window.recording, spikes=SpikeTrains(spikes.times[keep], spikes.units[keep]))
    return dataclasses.replace(window, recording=recording)


def _early_outputs(name: str, overrides: dict, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(outputs before CUT on intact windows, the same with spikes after CUT removed)."""
    spec = get_spec(name)
    recordings = dataset.recordings if spec.multi_session else dataset.recordings[:1]
    config = build_config(name, "tiny", **overrides)
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data(recordings, config)).eval()
    tokenizer = spec.make_tokenizer(config)
    windows = [recordings[0].window(t0, t0 + 1.0) for t0 in recordings[0].trials.start[:3]]
    out = []
    for group in (windows, [_drop_after(w, CUT) for w in windows]):
        batch = partial(collate, pack=spec.pack)([tokenizer(w) for w in group])
        with torch.no_grad():
            outputs = model(batch)
        if "behavior" in outputs:
            early = batch.query_timestamps < CUT - 0.05  # a query's own bin / chunk ends before the cut
            out.append(outputs["behavior"][early].numpy())
        else:
            bins = outputs["log_rates"].shape[1]
            out.append(outputs["log_rates"][:, : int(bins * (CUT - 0.05))].numpy())
    return out[0], out[1]


@pytest.mark.parametrize("name", list_models())
def test_every_model_and_preset_declares_causality(name):
    for preset in get_spec(name).presets:
        assert isinstance(is_causal(name, preset=preset), bool)


CHECKED = [  # (model, overrides, declared causal)
    ("possm", {}, True),
    ("ndt3", {}, True),
    ("ndt2_decoder", {"causal": True}, True),
    ("ndt2_decoder", {"causal": False}, False),
    ("ndt1", {"context_forward": 0}, True),
    ("ndt1", {}, False),
    ("stndt", {"context_forward": 0}, False),  # spatial tokens span the window even with causal time attention
    ("poyo", {}, False),
    ("spint", {}, False),
]


@pytest.mark.parametrize("name,overrides,causal", CHECKED)
def test_causality_declaration_matches_behaviour(name, overrides, causal, small_dataset):
    assert is_causal(name, build_config(name, "tiny", **overrides)) is causal
    intact, cut = _early_outputs(name, overrides, small_dataset)
    assert intact.size > 0
    if causal:
        np.testing.assert_allclose(intact, cut, atol=1e-5)
    else:
        assert not np.allclose(intact, cut, atol=1e-5)
