"""The unified model's streaming path (POSSM's real-time protocol, :class:`spikefm.realtime.StreamingDecoder`).

Per-stream constants once, then one 50 ms chunk at a time; each step equals the offline pass's behaviour for that
chunk (tested to 1e-5), because the model is causal by construction: a chunk's outputs read only the spikes up to
its end.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from spikefm.nn.chunked import ChunkStreamState, stream_chunk, stream_constants
from spikefm.nn.chunking import bin_centres
from spikefm.nn.transformer import context_kv
from spikefm.tokenize.base import TokenType

__all__ = ["UnifiedState", "UnifiedStreaming"]

UnifiedState = ChunkStreamState  # streaming state: core state, decoder-key/value history, chunks seen


class UnifiedStreaming:
    """Mixin of :class:`~spikefm.models.unified.Unified`: ``prepare_stream``, ``initial_stream_state``, ``stream_step``."""

    @torch.no_grad()
    def prepare_stream(self, unit_keys: Sequence[str], session: str, query_offsets: Tensor) -> dict[str, Any]:
        """Per-stream constants (the streaming protocol); the session must be calibrated.

        ``unit_keys`` are the input units (with ``heldout_targets``, leave held-out units out).
        """
        if self.unit_table is not None:
            identity = self.unit_table.embed(list(unit_keys))
        elif session not in self._calibration:
            raise KeyError(f"session {session!r} is not calibrated; call model.calibrate(recording) first")
        else:
            table = self._registered(session)
            identity = torch.stack([table[k] for k in unit_keys])  # KeyError names a key
        if self.population is not None:  # + the embedding of each unit's loadings in its session's frame
            identity = identity + self.population_embedding(self.population(unit_keys, [session], identity.device))
        identity = identity + self.identity_offset.offsets(unit_keys, identity)
        if self.input_triggered is not None:  # + the embedding of each unit's first-pass triggered state
            features = self._registered_features("input_features", session)
            identity = identity + self.input_triggered(torch.stack([features[k] for k in unit_keys]))
        spike, start = (identity + self.token_type_embedding.weight[t] for t in (TokenType.SPIKE, TokenType.START))
        query = self.task_embedding.embed([self.config.behavior_key]).expand(query_offsets.shape[0], -1)  # [Qc, D]
        constants = stream_constants(self.encoder, self.decoder, self.rotary, self.core, self.latent_embedding.weight,
                                     query, query_offsets, self.config.chunk, self.config.context_chunks)  # fmt: skip
        spike_kv, start_kv = context_kv(self.encoder, spike), context_kv(self.encoder, start)  # [U, 2 * heads * Dh]
        return {**constants, "spike": spike, "start": start, "spike_kv": spike_kv, "start_kv": start_kv,
                "head": self.readout[self.config.behavior_key]}  # fmt: skip

    def initial_stream_state(self) -> UnifiedState:
        """The state before a stream's first chunk (zeros, empty history)."""
        return UnifiedState.initial(self.core, self.decoder, self.config.context_chunks, self.latent_embedding.weight)

    @torch.no_grad()
    def stream_step(self, units: Tensor, times: Tensor, stream: dict[str, Any], state: UnifiedState):
        """One chunk: :meth:`forward`'s behaviour for it (eval mode). units long [n], times [n] s into the chunk."""
        if self.count_embedding is None:  # token keys / values fixed per stream
            kv, start = stream["spike_kv"][units], stream["start_kv"]
        else:  # + each unit's count in this chunk
            counts = torch.bincount(units, minlength=stream["spike"].shape[0]).float()  # [U]
            feature = self.count_embedding(torch.log1p(counts)[:, None])  # [U, D]
            kv = context_kv(self.encoder, stream["spike"][units] + feature[units])
            start = context_kv(self.encoder, stream["start"] + feature)
        if state.filled == 0:  # a stream's first chunk holds every unit's START token at time 0
            kv, times = torch.cat([start, kv]), torch.cat([times.new_zeros(start.shape[0]), times])
        if self.config.input_bin is not None:
            times = bin_centres(times, self.config.input_bin, self.config.chunk)
        out, state = stream_chunk(self.encoder, self.decoder, self.core, stream, kv, times, state)
        return stream["head"](out), state
