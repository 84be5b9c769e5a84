"""One masking scheme per batch (draw_unit_masks) and per-window flags aligned with the batch's units."""

import numpy as np
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.objectives.unit_masking import draw_unit_masks, flat_units
from spikefm.tokenize.base import collate
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer


def _batch():
    data = generate(SyntheticConfig(n_sessions=2, units_per_session=(8, 11), n_trials=3, seed=6))
    tokenizer = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=20.0))
    return collate([tokenizer(r.window(float(r.trials.start[0]), float(r.trials.start[0]) + 1.0))
                    for r in data.recordings], pack=True)  # fmt: skip


def test_evaluation_predicts_every_unit_forward_and_training_without_schemes_scores_none():
    batch = _batch()
    n = batch.unit_offsets.diff()
    masks = draw_unit_masks(batch, ("neuron", "inter_region"), training=False)
    assert masks.scheme == "causal" and masks.shift == 1 and not masks.hidden.any()
    assert flat_units(masks.scored, batch).all() and flat_units(masks.scored, batch).numel() == int(n.sum())
    none = draw_unit_masks(batch, (), training=True)
    assert none.scheme == "causal" and not none.scored.any()


def test_training_draws_one_of_the_given_schemes_and_flags_only_real_units():
    batch = _batch()
    torch.manual_seed(0)
    drawn = {draw_unit_masks(batch, ("neuron", "causal"), training=True).scheme for _ in range(20)}
    assert drawn == {"neuron", "causal"}
    masks = draw_unit_masks(batch, ("neuron",), training=True)
    padding = ~(torch.arange(masks.hidden.shape[1])[None] < batch.unit_offsets.diff()[:, None])
    assert not (masks.hidden & padding).any() and not (masks.scored & padding).any()
    assert np.array_equal(flat_units(masks.hidden, batch).numpy(), masks.hidden[~padding].numpy())
