"""IdentityReadout: each unit's linear readout of a shared state, its weights computed from its identity."""

import pytest
import torch

from spikefm.nn import IdentityReadout


def test_a_units_rates_depend_on_its_own_identity_and_state_only():
    torch.manual_seed(0)
    readout = IdentityReadout(8, triggered_dim=5)
    states, identity, triggered = torch.randn(6, 4, 8), torch.randn(6, 8), torch.randn(6, 5)
    out = readout(states, identity, triggered)
    assert out.shape == (6, 4)
    perm = torch.randperm(6)  # rows are an unordered set: permuting them permutes the rates
    torch.testing.assert_close(readout(states[perm], identity[perm], triggered[perm]), out[perm])
    changed = identity.clone()
    changed[2] += 1.0
    again = readout(states, changed, triggered)
    assert not torch.allclose(again[2], out[2])
    torch.testing.assert_close(again[torch.arange(6) != 2], out[torch.arange(6) != 2])
    # the same unit (identity) reads a state linearly: log-rate(s1 + s2) - bias = sum of the parts
    zero = readout(torch.zeros(6, 4, 8), identity, triggered)
    torch.testing.assert_close(readout(2 * states, identity, triggered) - zero, 2 * (out - zero))


def test_no_parameter_is_per_unit_and_triggered_states_are_required_exactly_when_built():
    readout = IdentityReadout(8)
    assert sum(p.numel() for p in readout.parameters()) == 8 * 9 + 9  # one Linear(D, D + 1), whatever the units
    with pytest.raises(ValueError, match="triggered"):
        readout(torch.zeros(2, 3, 8), torch.zeros(2, 8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="triggered"):
        IdentityReadout(8, triggered_dim=5)(torch.zeros(2, 3, 8), torch.zeros(2, 8))
