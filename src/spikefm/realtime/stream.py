"""Real-time decoding: feed each new chunk of spikes, get the decoded behaviour, keep a fixed state.

>>> decoder = StreamingDecoder(model, unit_keys=recording.unit_keys(), session=recording.session)  # doctest: +SKIP
>>> for end in chunk_ends:  # doctest: +SKIP
...     velocity = decoder.step(times_in_chunk, units_in_chunk, chunk_end=end)  # [Qc, D]

Any model with the streaming protocol works (:class:`~spikefm.models.possm.POSSM`,
:class:`~spikefm.models.unified.Unified`): ``prepare_stream(unit_keys, session, query_offsets)``
-> per-stream constants, ``initial_stream_state()``, ``stream_step(units, times, stream, state)``
-> (behaviour, state), and ``config.chunk`` / ``config.query_rate_hz``. The decoder holds only
the model's state (the recurrent core's state and its last ``context_chunks`` outputs) and the end of the last chunk, so
memory stays constant however long it runs. Chunks must be consecutive and exactly
``model.config.chunk`` long (step an empty chunk through silence); spikes must be sorted
and inside ``[chunk_end - chunk, chunk_end)``. Stepping the chunks of a window from
:meth:`StreamingDecoder.reset` gives what the offline :meth:`POSSM.forward` gives on that
window (tests/realtime/test_stream.py).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from torch import nn

from spikefm.models.possm import default_query_offsets

__all__ = ["StreamingDecoder", "STREAM_PROTOCOL"]

STREAM_PROTOCOL = ("prepare_stream", "initial_stream_state", "stream_step")


class StreamingDecoder:
    """Chunk-by-chunk decoding with a trained streaming model (POSSM, unified).

    Args:
        model: a model with the streaming protocol (put in eval mode here; the decoder never
            trains it). Projections that do not depend on the spikes are computed once here:
            build a new decoder after changing the model's weights.
        unit_keys: ``"session/unit"`` key of each unit index ``spike_units`` may hold, in
            order (e.g. ``recording.unit_keys()``); every key must be in the model's vocabulary
            (POSSM: :meth:`POSSM.add_session` + recalibration for a new session; unified:
            :meth:`Unified.calibrate` on the session).
        session: the session whose embedding makes the output queries.
        query_offsets: query times inside a chunk, seconds from its start; default the
            model's offline query grid (``k / query_rate_hz``: 5 queries per 50 ms at 100 Hz).

    Shapes:
        step(spike_times [n] seconds, spike_units [n] int, chunk_end) -> behaviour [Qc, D]
        at ``chunk_end - chunk + query_offsets`` (see :attr:`last_query_times`).
        run(spike_times [n], spike_units [n], start=, n_chunks=) -> [n_chunks * Qc, D]: ``step``
        over consecutive chunks.
    """

    def __init__(
        self, model: nn.Module, unit_keys: Sequence[str], session: str, *,
        query_offsets: Sequence[float] | None = None,
    ) -> None:  # fmt: skip
        missing = [name for name in STREAM_PROTOCOL if not callable(getattr(model, name, None))]
        if missing:
            raise TypeError(
                f"StreamingDecoder needs a streaming model (POSSM, unified), got {type(model).__name__} "
                f"without {missing}"
            )
        self.model = model.eval()
        self.chunk = float(model.config.chunk)
        self.device = next(model.parameters()).device
        self._n_units = len(unit_keys)
        offsets = default_query_offsets(model.config) if query_offsets is None else np.asarray(query_offsets, float)
        if offsets.ndim != 1 or offsets.size == 0 or offsets.min() < 0 or offsets.max() >= self.chunk:
            raise ValueError(f"query_offsets must be a non-empty 1-D list in [0, {self.chunk}) s, got {offsets}")
        self.query_offsets = torch.as_tensor(offsets, dtype=torch.float64, device=self.device)
        # Unknown unit keys or session: the model's KeyError names them.
        self.stream = model.prepare_stream(list(unit_keys), session, self.query_offsets)
        self.state = model.initial_stream_state()
        self.last_end: float | None = None
        self.last_query_times: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        return self._n_units

    def reset(self) -> None:
        """Forget everything: the next step starts a fresh stream, as the offline pass starts a window."""
        self.state = self.model.initial_stream_state()
        self.last_end = None
        self.last_query_times = None

    def step(self, spike_times: Sequence[float] | np.ndarray, spike_units: Sequence[int] | np.ndarray,
             chunk_end: float) -> Tensor:  # fmt: skip
        """Decode the chunk ``[chunk_end - chunk, chunk_end)`` from its spikes.

        Args:
            spike_times: float [n] spike times in seconds (the stream's clock), sorted.
            spike_units: int [n] unit index of each spike (into ``unit_keys``).
            chunk_end: end of this chunk; the first chunk after :meth:`reset` may end anywhere,
                later ones exactly one chunk after the previous.

        Returns:
            float [Qc, D] behaviour at the chunk's query times.
        """
        start = self._chunk_start(float(chunk_end))
        times, units = self._check_spikes(spike_times, spike_units, start, float(chunk_end))
        device = self.device
        with torch.inference_mode():
            behavior, self.state = self.model.stream_step(
                torch.as_tensor(units, device=device),
                torch.as_tensor(times - start, dtype=torch.float64, device=device),
                self.stream,
                self.state,
            )  # fmt: skip
        self.last_end = float(chunk_end)
        self.last_query_times = start + self.query_offsets.cpu().numpy()
        return behavior

    def run(self, spike_times: np.ndarray, spike_units: np.ndarray, *, start: float, n_chunks: int) -> Tensor:
        """Decode ``n_chunks`` consecutive chunks from ``start``: :meth:`step` on each chunk
        ``[start + k * chunk, start + (k + 1) * chunk)`` with its own spikes.

        Args:
            spike_times: float [n] sorted spike times in seconds (the stream's clock), all inside
                ``[start, start + n_chunks * chunk)``.
            spike_units: int [n] unit index of each spike.
            start: the first chunk's start (after a previous step: that chunk's end).

        Returns:
            float [n_chunks * Qc, D] behaviour at the chunks' query times, in order.
        """
        if n_chunks < 1:
            raise ValueError(f"n_chunks must be >= 1, got {n_chunks}")
        times, units = np.asarray(spike_times, dtype=np.float64), np.asarray(spike_units)
        edges = np.searchsorted(times, start + np.arange(n_chunks + 1) * self.chunk)  # chunk k: edges[k]:edges[k + 1]
        if edges[0] > 0 or edges[-1] < times.size:
            raise ValueError(f"spike_times must lie in [{start}, {start + n_chunks * self.chunk}) s, the chunks run")
        outputs = [self.step(times[lo:hi], units[lo:hi], start + (k + 1) * self.chunk)
                   for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]  # fmt: skip
        return torch.cat(outputs)

    def _chunk_start(self, chunk_end: float) -> float:
        if not math.isfinite(chunk_end):
            raise ValueError(f"chunk_end must be a finite time in seconds, got {chunk_end}")
        if self.last_end is None:
            return chunk_end - self.chunk
        expected = self.last_end + self.chunk
        if abs(chunk_end - expected) > 1e-6:
            raise ValueError(
                f"chunks must be consecutive and {self.chunk} s long: after a chunk ending at {self.last_end} the next "
                f"ends at {expected}, got {chunk_end} (step empty chunks through gaps, or reset())"
            )
        return self.last_end

    def _check_spikes(self, spike_times, spike_units, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        times = np.asarray(spike_times, dtype=np.float64).reshape(-1)
        units = np.asarray(spike_units).reshape(-1)
        if times.shape != units.shape:
            raise ValueError(f"spike_times and spike_units differ in length: {times.size} vs {units.size}")
        if units.size and not np.issubdtype(units.dtype, np.integer):
            raise TypeError(f"spike_units must be integer unit indices, got dtype {units.dtype}")
        if times.size == 0:
            return times, units.astype(np.int64)
        if not np.all(np.isfinite(times)):
            raise ValueError("spike_times contain NaN or inf")
        if np.any(np.diff(times) < 0):
            bad = int(np.flatnonzero(np.diff(times) < 0)[0]) + 1
            raise ValueError(
                f"spikes out of order: spike {bad} at {times[bad]} s comes before {times[bad - 1]} s; sort them"
            )
        if times[0] < start or times[-1] >= end:
            outside = times[(times < start) | (times >= end)]
            raise ValueError(
                f"{outside.size} spike(s) outside the chunk [{start}, {end}) s (first at {outside[0]} s); each chunk "
                "takes only its own spikes"
            )
        if units.min() < 0 or units.max() >= self.n_units:
            raise ValueError(
                f"spike_units must lie in [0, {self.n_units}) (the unit_keys given), got {units.min()}..{units.max()}"
            )
        return times, units.astype(np.int64)
