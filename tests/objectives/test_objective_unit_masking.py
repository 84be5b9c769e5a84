"""MtM's schemes on units: what each hides and scores."""

import numpy as np
import pytest
import torch

from spikefm.objectives.unit_masking import eligible_schemes, region_ids, unit_masks

VALID = torch.tensor([[True] * 10, [True] * 7 + [False] * 3])
REGIONS = torch.tensor([[0] * 5 + [1] * 5, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]])


@pytest.mark.parametrize("seed", range(5))
def test_each_scheme_hides_and_scores_what_mtm_does(seed):
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    neuron = unit_masks("neuron", VALID, generator=g())
    assert torch.equal(neuron.hidden, neuron.scored) and neuron.shift == 0
    assert neuron.scored.sum(1).tolist() == [3, 2]  # MtM's 0.3 of 10 and of 7 valid units
    causal = unit_masks("causal", VALID)
    assert not causal.hidden.any() and torch.equal(causal.scored, VALID) and causal.shift == 1
    inter = unit_masks("inter_region", VALID, REGIONS, generator=g())
    for b in range(2):  # one whole region, hidden and scored
        picked = REGIONS[b][inter.scored[b]].unique()
        assert picked.numel() == 1 and torch.equal(inter.scored[b], VALID[b] & (REGIONS[b] == picked))
    assert torch.equal(inter.hidden, inter.scored)
    intra = unit_masks("intra_region", VALID, REGIONS, generator=g())
    for b in range(2):  # part of one region scored; the other regions hidden, not scored
        region = REGIONS[b][intra.scored[b]].unique()
        assert region.numel() == 1
        assert intra.hidden[b][VALID[b] & (REGIONS[b] != region)].all()
    assert not (intra.scored & ~intra.hidden).any() and not (intra.hidden & ~VALID).any()


def test_region_ids_and_eligibility():
    ids = region_ids([np.array(["PMd", "M1", "PMd"]), np.array(["", ""])])
    assert ids[0].tolist() == [1, 0, 1] and ids[1].tolist() == [0, 0]
    assert eligible_schemes(["neuron", "inter_region"], ids) == ["neuron"]
    assert eligible_schemes(["neuron", "inter_region"], ids[:1]) == ["neuron", "inter_region"]
