"""Per-unit count readouts without per-unit parameters: a unit's readout weights come from its identity.

Binned models (NDT1, MtM) read every unit's log-rate off a shared state with a learned row per unit. A model
whose units are an unordered set, identified only from unlabeled activity (SPINT's IDEncoder), cannot own such
rows. :class:`IdentityReadout` keeps the factorisation and computes the row: a unit's identity maps to its
weights and bias over the shared state, so a unit never seen in training gets a readout in one forward pass.

An identity built from the unit's activity *alone* says little about which direction of the population state
drives it; :func:`~spikefm.nn.calibration.triggered_states` measures exactly that (the unit's spike-triggered
average of the state over calibration windows), and the readout can add an embedding of it to the identity.

Shape legend: N (window, unit) rows, C chunks or bins, D state / identity width, H triggered-state width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["IdentityReadout"]


class IdentityReadout(nn.Module):
    """Log-rates of units from a shared state, each unit's weights computed from its identity.

    Args:
        dim: D, the width of the state and of the identities.
        triggered_dim: H + 1, the width of :func:`~spikefm.nn.calibration.triggered_states` rows whose
            embedding (an MLP) is added to the identity; ``None``: the identity alone.

    Shapes:
        forward(states [N, C, D], identity [N, D], triggered [N, H + 1] or None) -> log-rates [N, C].
    """

    def __init__(self, dim: int, triggered_dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.weights = nn.Linear(dim, dim + 1)  # identity -> the unit's weights [D] and bias
        self.triggered = None
        if triggered_dim is not None:
            self.triggered = nn.Sequential(nn.Linear(triggered_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, states: Tensor, identity: Tensor, triggered: Tensor | None = None) -> Tensor:
        if (triggered is None) != (self.triggered is None):
            raise ValueError("IdentityReadout: pass triggered states exactly when built with triggered_dim")
        if self.triggered is not None:
            identity = identity + self.triggered(triggered)
        weight, bias = self.weights(identity).split([self.dim, 1], dim=-1)  # [N, D], [N, 1]
        return torch.einsum("ncd,nd->nc", states, weight) / math.sqrt(self.dim) + bias
