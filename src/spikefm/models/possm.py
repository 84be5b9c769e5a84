"""POSSM (Ryoo et al. 2025): per-spike tokens in short chunks, a recurrent core across chunks.

Spikes are cut into consecutive ``chunk``-second chunks (50 ms). Per chunk, one learned
latent cross-attends to that chunk's spike tokens (POYO unit + token-type embeddings, rotary
on chunk-relative time, 1 head of 64); the per-chunk latents feed a recurrent core (GRU, or
a diagonal selective SSM) across chunks; each output query (the session's embedding at its
time) cross-attends causally to the core outputs of its own chunk and the two before it
(``context_chunks = 3``), keyed at the chunks' end times; a linear read-out gives the
behaviour. Nothing looks past the end of a query's chunk, so the model streams: each new
chunk costs one encoder call, one core step and one small decoder call
(:meth:`POSSM.stream_step`, wrapped by :class:`spikefm.realtime.StreamingDecoder`).

Empty chunks: the latent sees no token (attention returns zeros), where the port feeds a
blank token. Offline, a time within 5 us below a chunk boundary counts to the next chunk
(float32 timestamps of boundary queries round down).

Source: no official code; the port on neuro-galaxy/torch_brain branch ``possm``:
``torch_brain/models/possm.py``, ``examples/possm/configs/model/possm.yaml`` (POSSM-GRU 9M)
and ``possm_small.yaml``; paper arXiv 2506.05320.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.models._shared import EMBEDDING_INIT_STD, UnitRecalibration, spike_decoder_sizes, unit_dropout_keep
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.chunked import (
    ChunkStreamState, chunk_blocks, chunk_ends, count_chunks, encode_chunks, query_context_mask, read_chunks,
    stream_chunk, stream_constants,
)  # fmt: skip
from spikefm.nn.chunking import chunk_grid, token_samples
from spikefm.nn.identity import KeyedEmbedding, UnitEmbedding
from spikefm.nn.position import RotaryTimeEmbedding
from spikefm.nn.recurrent import CORES, make_core
from spikefm.nn.transformer import context_kv
from spikefm.objectives.behavior import behavior_mse, single_target
from spikefm.tokenize.base import N_TOKEN_TYPES, Batch, TokenType
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = ["POSSMConfig", "POSSM", "POSSMState", "default_query_offsets", "possm_objective", "PRESETS"]


@dataclass
class POSSMConfig:
    """POSSM architecture.

    Attributes:
        dim: token / latent / query width.
        head_dim, cross_heads: encoder and decoder attention shape (port: 64, 1).
        latents_per_chunk: learned latents per chunk (port: 1), all at the chunk centre.
        chunk: seconds per chunk (port ``bin_width`` = ``bin_step``: 0.05).
        context_chunks: chunks an output query attends to, its own included (port 3).
        core: ``"gru"`` (the port), ``"ssm"`` (diagonal selective SSM, the paper's family) or ``"transformer"``
            (a causal transformer over the last 20 chunks, :class:`~spikefm.nn.windowed_core.WindowedTransformer`).
        rnn_dim, rnn_layers, rnn_dropout: GRU hidden size, layers, dropout between layers.
        ssm_state_dim, ssm_expand: SSM state size and expansion (core ``"ssm"``, width = latents).
        dropout: feed-forward dropout (port ``ffn_dropout``).
        t_min, t_max: rotary period range in seconds (port: 1e-4, 10).
        unit_dropout, min_units: unit-dropout augmentation (as POYO) in training.
        behavior_key: behaviour series decoded.
        query_rate_hz: output query rate.
    """

    dim: int = 256
    head_dim: int = 64
    cross_heads: int = 1
    latents_per_chunk: int = 1
    chunk: float = 0.05
    context_chunks: int = 3
    core: str = "gru"
    rnn_dim: int = 512
    rnn_layers: int = 4
    rnn_dropout: float = 0.2
    ssm_state_dim: int = 16
    ssm_expand: int = 2
    dropout: float = 0.2
    t_min: float = 1e-4
    t_max: float = 10.0
    unit_dropout: bool = True
    min_units: int = 30
    behavior_key: str = "hand_vel"
    query_rate_hz: float = 100.0

    def __post_init__(self) -> None:
        sizes = (self.dim, self.head_dim, self.cross_heads, self.latents_per_chunk, self.context_chunks,
                 self.rnn_dim, self.rnn_layers, self.ssm_state_dim, self.ssm_expand)  # fmt: skip
        if min(sizes) < 1:
            raise ValueError("POSSMConfig: widths, heads, latents, context_chunks and layer counts must be >= 1")
        if self.core not in CORES:
            raise ValueError(f"POSSMConfig.core must be one of {CORES}, got {self.core!r}")
        if not (self.chunk > 0 and self.query_rate_hz > 0):
            raise ValueError(f"POSSMConfig: need chunk, query_rate_hz > 0, got {self.chunk}, {self.query_rate_hz}")


PRESETS: dict[str, dict[str, Any]] = {
    # torch_brain branch possm, examples/possm/configs/model/possm.yaml ("POSSM-GRU 9M", README):
    # 50 ms bins, 1 latent, dim 256, dim_head 64, 1 cross head, depth 0, GRU 4 x 512, rnn_dropout 0.2,
    # ffn_dropout 0.2, output_ca_ctx_lim 3; t_min 1e-4, t_max 10 (POSSM class defaults).
    "possm_gru_9m": {},
    # possm_small.yaml: dim 64, GRU 1 x 256 (rest as above).
    "possm_small": {"dim": 64, "rnn_dim": 256, "rnn_layers": 1},
    # CPU-sized for tests, the tiny recipe and the latency benchmark.
    "tiny": {"dim": 64, "head_dim": 32, "rnn_dim": 128, "rnn_layers": 1, "dropout": 0.1, "min_units": 20},
}


POSSMState = ChunkStreamState  # streaming state: core state, decoder-key/value history, chunks seen


class POSSM(UnitRecalibration, nn.Module):
    """POSSM decoder.

    Args:
        config: architecture.
        unit_keys: initial unit vocabulary (``"session/unit"``).
        sessions: initial session vocabulary.
        behavior_dim: width of the decoded behaviour.

    Shapes:
        forward(batch of per-spike tokens, padded [B, L] or packed [sum L]) -> ``behavior``
        [B, Q, behavior_dim] at ``batch.query_timestamps``.
        stream_step(units [n], times [n], stream constants, state) -> (behavior [Qc, behavior_dim],
        state): one chunk, see :class:`spikefm.realtime.StreamingDecoder`.
    """

    def __init__(
        self, config: POSSMConfig, *, unit_keys: Sequence[str], sessions: Sequence[str], behavior_dim: int
    ) -> None:
        super().__init__()
        self.config, self.behavior_dim = config, behavior_dim
        dim = config.dim
        self.unit_embedding = UnitEmbedding(dim=dim, keys=list(unit_keys))
        self.session_embedding = KeyedEmbedding(dim=dim, keys=list(sessions))
        self.token_type_embedding = nn.Embedding(N_TOKEN_TYPES, dim)
        # At the unit rows' scale, as in POYO: at N(0, 1) the token type hides which unit spiked.
        nn.init.normal_(self.token_type_embedding.weight, std=EMBEDDING_INIT_STD)
        self.latent_embedding = nn.Embedding(config.latents_per_chunk, dim)
        nn.init.normal_(self.latent_embedding.weight, std=EMBEDDING_INIT_STD)  # torch_brain's latent init
        self.rotary = RotaryTimeEmbedding(head_dim=config.head_dim, t_min=config.t_min, t_max=config.t_max)
        self.core, self.core_dim = make_core(
            config.core, input_dim=config.latents_per_chunk * dim, hidden_dim=config.rnn_dim, layers=config.rnn_layers,
            dropout=config.rnn_dropout, state_dim=config.ssm_state_dim, expand=config.ssm_expand,
        )  # fmt: skip
        self.encoder, self.decoder = chunk_blocks(dim=dim, heads=config.cross_heads, head_dim=config.head_dim,
                                                  core_dim=self.core_dim, dropout=config.dropout)  # fmt: skip
        self.readout = nn.Linear(dim, behavior_dim)

    # ------------------------------------------------------------------ offline pass
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        if batch.query_timestamps is None:
            raise ValueError("POSSM needs output queries: tokenize with SpikeConfig(query='rate' or 'behavior')")
        c, b, times = self.config, batch.batch_size, batch.query_timestamps  # times [B, Q]
        rows = self.unit_embedding.lookup(batch.unit_keys)[batch.unit_index.clamp(min=0)]  # [*P]
        tokens = self.unit_embedding(rows) + self.token_type_embedding(batch.token_type)  # [*P, D]
        keep = batch.mask
        if self.training and c.unit_dropout:
            keep = keep & unit_dropout_keep(batch, c.min_units)
        n_chunks = count_chunks(float(batch.duration.max()), c.chunk)
        sample = token_samples(keep, batch.sample_index)  # [*P]
        grid = chunk_grid(tokens[keep], batch.timestamps[keep], sample[keep], b * n_chunks, n_chunks, c.chunk)
        latents = encode_chunks(self.encoder, self.latent_embedding.weight, self.rotary, *grid, c.chunk)  # [B*C, K*D]
        core_out, _ = self.core(latents.view(b, n_chunks, -1))  # [B, C, H]
        session = self.session_embedding(self.session_embedding.lookup(batch.sessions))  # [B, D]
        queries = session[:, None, :].expand(-1, times.shape[1], -1)  # [B, Q, D]
        mask = query_context_mask(times, c.chunk, n_chunks, c.context_chunks)  # [B, Q, C]
        ends = chunk_ends(n_chunks, c.chunk, keep.device)[None]  # [1, C]
        out = read_chunks(self.decoder, self.rotary, queries, times, core_out, ends, mask)  # [B, Q, D]
        return {"behavior": self.readout(out)}  # [B, Q, behavior_dim]

    # ------------------------------------------------------------------ streaming
    @torch.no_grad()
    def prepare_stream(self, unit_keys: Sequence[str], session: str, query_offsets: Tensor) -> dict[str, Any]:
        """Per-stream constants (the streaming protocol; rebuild after changing weights).

        Args:
            unit_keys: the stream's units, in the order ``stream_step``'s ``units`` index them.
            session: the session whose embedding makes the output queries.
            query_offsets: float64 [Qc] query times relative to the chunk start.
        """
        rows = self.unit_embedding.lookup(list(unit_keys))  # KeyError names the missing keys
        units = self.unit_embedding(rows) + self.token_type_embedding.weight[TokenType.SPIKE]  # [U, D]
        query = self.session_embedding(self.session_embedding.lookup([session])).expand(query_offsets.shape[0], -1)
        constants = stream_constants(self.encoder, self.decoder, self.rotary, self.core, self.latent_embedding.weight,
                                     query, query_offsets, self.config.chunk, self.config.context_chunks)  # fmt: skip
        return {**constants, "unit_kv": context_kv(self.encoder, units)}  # unit_kv [U, 2 * heads * head_dim]

    def initial_stream_state(self) -> POSSMState:
        """The state before the first chunk (zeros, empty history)."""
        return POSSMState.initial(self.core, self.decoder, self.config.context_chunks, self.readout.weight)

    @torch.no_grad()
    def stream_step(
        self, units: Tensor, times: Tensor, stream: dict[str, Any], state: POSSMState
    ) -> tuple[Tensor, POSSMState]:
        """Decode one chunk: :meth:`forward`'s computation for that chunk's queries, in eval mode.

        Args:
            units: long [n] index of each spike's unit in the stream's units.
            times: float64 [n] spike times relative to the chunk start, in [0, chunk).
            stream: from :meth:`prepare_stream`.
            state: from :meth:`initial_stream_state` or the previous step (not modified).

        Returns:
            behaviour [Qc, behavior_dim] and the new state.
        """
        out, state = stream_chunk(self.encoder, self.decoder, self.core, stream, stream["unit_kv"][units], times, state)
        return self.readout(out), state


def possm_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """MSE between decoded and true behaviour at the valid queries (POYO's objective)."""
    return behavior_mse(outputs["behavior"], single_target(batch, "POSSM"), batch.query_mask), {}


def _tokenizer(config: POSSMConfig, **overrides: Any) -> SpikeTokenizer:
    # The port feeds spikes only (no START / END tokens): a unit is seen when it fires.
    return SpikeTokenizer(
        SpikeConfig(**{"query": "rate", "query_rate_hz": config.query_rate_hz, "behavior_keys": (config.behavior_key,),
                       "start_end_tokens": False, **overrides})
    )  # fmt: skip


def default_query_offsets(config: POSSMConfig) -> np.ndarray:
    """The offline query grid inside one chunk: ``k / query_rate_hz`` for ``k / rate < chunk``."""
    n = max(1, math.ceil(config.chunk * config.query_rate_hz - 1e-6))
    return np.arange(n) / config.query_rate_hz


SPEC = register(
    ModelSpec(
        name="possm", config_cls=POSSMConfig, model_cls=POSSM, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=possm_objective, sizes_from_data=spike_decoder_sizes, task="decoding", pack=True,
        causal=True,  # queries attend to chunks ending at or before them; it streams (realtime/)
    )
)
