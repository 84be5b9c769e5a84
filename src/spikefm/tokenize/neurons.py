"""Neuron-as-token (STNDT spatial tokens, SPINT): one token per unit holding its binned series.

>>> import numpy as np
>>> from spikefm.data.recording import Recording, SpikeTrains, Units
>>> rec = Recording(spikes=SpikeTrains(np.array([0.01, 0.03]), np.array([1, 1])),
...                 units=Units(ids=np.array(["a", "b"])), start=0.0, end=1.0)
>>> tokens = NeuronTokenizer(NeuronConfig(bin_size=0.02, query="none"))(rec.window(0.0, 0.04))
>>> tokens.values.tolist()  # [units, bins]
[[0, 0], [1, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikefm.data.recording import Window
from spikefm.tokenize.base import QueryConfig, TokenType, Tokens, cached_unit_keys, make_queries, unit_extras
from spikefm.tokenize.binned import bin_window

__all__ = ["NeuronConfig", "NeuronTokenizer"]


@dataclass(frozen=True, kw_only=True)
class NeuronConfig(QueryConfig):
    """Config of :class:`NeuronTokenizer`.

    Args:
        bin_size: bin width in seconds.
        query: defaults to ``"bins"`` (one behaviour query at each bin centre).
    """

    query: str = "bins"
    bin_size: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.bin_size) and self.bin_size > 0):
            raise ValueError(f"NeuronConfig.bin_size must be a positive number of seconds, got {self.bin_size}")


class NeuronTokenizer:
    """One token per unit: ``values`` int64 [U, T] its spike counts per bin, ``unit_index`` the
    unit, ``timestamps`` the window midpoint (a token spans the whole window), ``token_type`` SPIKE.
    The token order is the units table order; models over it should be permutation-equivariant.

    What it loses: spike timing within a bin (``bin_size``), and time as a token axis: the
    series length T is fixed by the window, so windows of different lengths give different
    token widths (collate zero-pads them). Sparsity cost: as :class:`BinnedTokenizer` (every
    (unit, bin) entry stored).
    """

    def __init__(self, config: NeuronConfig | None = None):
        self.config = config or NeuronConfig()

    def __call__(self, window: Window) -> Tokens:
        counts, edges = bin_window(window, self.config.bin_size)
        recording = window.recording
        queries, targets = make_queries(window, self.config, 0.5 * (edges[:-1] + edges[1:]))
        n = recording.n_units
        return Tokens(
            values=np.ascontiguousarray(counts.T),  # [U, T]
            timestamps=np.full(n, 0.5 * (recording.start + recording.end)),
            unit_index=np.arange(n, dtype=np.int64),
            token_type=np.full(n, TokenType.SPIKE, np.int64),
            mask=np.ones(n, bool),
            unit_keys=cached_unit_keys(recording),
            session=window.session,
            duration=window.duration,
            query_timestamps=queries,
            targets=targets,
            unit_extras=unit_extras(window),
        )

    @staticmethod
    def to_counts(tokens: Tokens) -> np.ndarray:
        """The count matrix int64 [T, U] back from neuron tokens (exact)."""
        return np.asarray(tokens.values, np.int64).T
