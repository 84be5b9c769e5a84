"""Per-spike tokens (POYO, POYO+, POSSM): one token per spike at its exact time.

>>> import numpy as np
>>> from spikefm.data.recording import Recording, SpikeTrains, Units
>>> rec = Recording(spikes=SpikeTrains(np.array([0.25, 0.5]), np.array([1, 0])),
...                 units=Units(ids=np.array(["a", "b"])), start=0.0, end=1.0)
>>> tokens = SpikeTokenizer(SpikeConfig(query="none"))(rec.window(0.0, 1.0))
>>> tokens.token_type.tolist()  # START/END per unit, then the spikes
[1, 2, 1, 2, 0, 0]
>>> times, units = SpikeTokenizer.decode(tokens)
>>> times.tolist(), units.tolist()
([0.25, 0.5], [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from spikefm.data.recording import Window
from spikefm.tokenize.base import QueryConfig, TokenType, Tokens, cached_unit_keys, make_queries, unit_extras

__all__ = ["SpikeConfig", "SpikeTokenizer"]


@dataclass(frozen=True, kw_only=True)
class SpikeConfig(QueryConfig):
    """Config of :class:`SpikeTokenizer`.

    Args:
        start_end_tokens: add a START token at 0 and an END token at the window end for every
            unit, interleaved ``[S0, E0, S1, E1, ...]`` before the spikes (as POYO does), so a
            silent unit is still seen.
        query: ``"rate"`` (default, ``query_rate_hz``), ``"behavior"`` or ``"none"``.
    """

    start_end_tokens: bool = True

    _allowed_queries = ("none", "rate", "behavior")


class SpikeTokenizer:
    """One token per spike: ``timestamps`` the exact float64 spike time (window-relative),
    ``unit_index`` the spiking unit, ``token_type`` SPIKE; ``values`` is empty (float32 [L, 0]):
    the identity and time are the whole token.

    What it loses: nothing about the spikes (the round trip through :meth:`decode` is exact).
    Cost: sequence length grows with the spike count (200 units at 15 Hz: 3,000 tokens per
    second plus 2 per unit), so attention over it needs a Perceiver-style bottleneck, and
    batches of busy and quiet windows pad badly (use ``collate(..., pack=True)``).
    """

    def __init__(self, config: SpikeConfig | None = None):
        self.config = config or SpikeConfig()

    def __call__(self, window: Window) -> Tokens:
        recording = window.recording
        times, units = recording.spikes.times, recording.spikes.units
        if self.config.start_end_tokens:
            times, units, token_type = self._with_start_end(recording.n_units, recording.start, recording.end,
                                                            times, units)
        else:
            token_type = np.zeros(times.shape[0], np.int64)  # TokenType.SPIKE
        queries, targets = make_queries(window, self.config)
        # A Recording's spikes are float64, int64 unit indices in range, so the fields below are
        # already what Tokens' checks would return: build without re-checking (a test holds
        # them equal to the checked construction).
        return Tokens.from_checked(
            values=np.empty((times.shape[0], 0), np.float32),
            timestamps=times,
            unit_index=units,
            token_type=token_type,
            mask=np.ones(times.shape[0], bool),
            unit_keys=cached_unit_keys(recording),
            session=window.session,
            duration=float(window.duration),
            query_timestamps=queries,
            targets=targets,
            extras={},
            unit_extras=unit_extras(window),
        )

    @staticmethod
    def _with_start_end(
        n_units: int, start: float, end: float, times: np.ndarray, units: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times, units and types of the START / END tokens followed by the spikes'."""
        edge_times, edge_units, edge_types = _edge_tokens(n_units, float(start), float(end))
        token_type = np.zeros(edge_types.shape[0] + times.shape[0], np.int64)  # TokenType.SPIKE after the edges
        token_type[: edge_types.shape[0]] = edge_types
        return np.concatenate([edge_times, times]), np.concatenate([edge_units, units]), token_type

    @staticmethod
    def decode(tokens: Tokens) -> tuple[np.ndarray, np.ndarray]:
        """Spike times (float64, window-relative) and unit indices (into ``tokens.unit_keys``)."""
        keep = (tokens.token_type == TokenType.SPIKE) & tokens.mask
        return tokens.timestamps[keep], tokens.unit_index[keep]


@lru_cache(maxsize=64)
def _edge_tokens(n_units: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """START / END tokens ``[S0, E0, S1, E1, ...]``: times, units, types (read-only, cached).

    Every window of one length and unit count has the same edge tokens, so they are built
    once instead of per window (``np.tile`` / ``np.repeat`` cost more than the concatenation).
    """
    arrays = (
        np.tile(np.array([start, end]), n_units),  # [2U]
        np.repeat(np.arange(n_units, dtype=np.int64), 2),
        np.tile(np.array([TokenType.START, TokenType.END], np.int64), n_units),
    )
    for array in arrays:
        array.flags.writeable = False
    return arrays
