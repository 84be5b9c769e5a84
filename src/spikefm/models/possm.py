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
from spikefm.nn.attention import Attention
from spikefm.nn.identity import KeyedEmbedding, UnitEmbedding
from spikefm.nn.position import RotaryTimeEmbedding
from spikefm.nn.chunking import chunk_grid, chunk_index
from spikefm.nn.recurrent import CORES, gru_weights, make_core, step_core
from spikefm.nn.transformer import CrossAttentionBlock, attend_projected, make_ffn, rotated_queries
from spikefm.objectives.behavior import behavior_mse, single_target
from spikefm.tokenize.base import N_TOKEN_TYPES, Batch, TokenType
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = [
    "POSSMConfig", "POSSM", "POSSMState", "POSSMStream", "chunk_index", "default_query_offsets", "possm_objective",
    "PRESETS",
]  # fmt: skip



@dataclass
class POSSMConfig:
    """POSSM architecture.

    Attributes:
        dim: token / latent / query width.
        head_dim, cross_heads: encoder and decoder attention shape (port: 64, 1).
        latents_per_chunk: learned latents per chunk (port: 1), all at the chunk centre.
        chunk: seconds per chunk (port ``bin_width`` = ``bin_step``: 0.05).
        context_chunks: chunks an output query attends to, its own included (port 3).
        core: ``"gru"`` (the port) or ``"ssm"`` (diagonal selective SSM, the paper's family).
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


@dataclass
class POSSMState:
    """Streaming state, fixed size: the core's state and its last ``context_chunks`` outputs.

    Attributes:
        core: the recurrent core's state (GRU [layers, 1, H]; SSM [layers, 1, E, S]).
        history: [context_chunks, 2 * heads * head_dim] the decoder's key / value projections of
            the last core outputs, oldest first.
        filled: how many rows of ``history`` hold real chunks (the rest are zeros).
    """

    core: Tensor
    history: Tensor
    filled: int = 0


@dataclass(frozen=True)
class POSSMStream:
    """Per-stream constants: every projection that does not depend on the spikes.

    Attributes:
        unit_kv: [U, 2 * H * Dh] encoder keys / values of each unit's spike token (unrotated).
        latent: [K, D] latent tokens. latent_q: [1, H, K, Dh] their rotated encoder queries.
        latent_unrot: [K, Dh/2, 2] inverse rotary at the latents' time (the chunk centre).
        query: [Qc, D] output queries. query_q: [1, H, Qc, Dh] their rotated decoder queries.
        query_unrot: [Qc, Dh/2, 2] inverse rotary at the query offsets.
        slot_rot: [context_chunks, Dh/2, 2] rotary at the history slots' chunk ends.
        omega: float64 [Dh/2] the rotary's angular frequencies.
        gru_weights: per GRU layer (w_ih, w_hh, b_ih, b_hh), or None for the SSM core.
    """

    unit_kv: Tensor
    latent: Tensor
    latent_q: Tensor
    latent_unrot: Tensor
    query: Tensor
    query_q: Tensor
    query_unrot: Tensor
    slot_rot: Tensor
    omega: Tensor
    gru_weights: tuple[tuple[Tensor, ...], ...] | None


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
        self.encoder = CrossAttentionBlock(
            attention=Attention(dim=dim, heads=config.cross_heads, head_dim=config.head_dim, rotate_value=True),
            ffn=make_ffn("geglu", dim=dim, hidden_dim=4 * dim, dropout=config.dropout),
        )
        self.decoder = CrossAttentionBlock(
            attention=Attention(dim=dim, heads=config.cross_heads, head_dim=config.head_dim, context_dim=self.core_dim,
                                rotate_value=True),
            ffn=make_ffn("geglu", dim=dim, hidden_dim=4 * dim, dropout=config.dropout),
            context_dim=self.core_dim,
        )  # fmt: skip
        self.readout = nn.Linear(dim, behavior_dim)

    # ------------------------------------------------------------------ offline pass
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        if batch.query_timestamps is None:
            raise ValueError("POSSM needs output queries: tokenize with SpikeConfig(query='rate' or 'behavior')")
        rows = self.unit_embedding.lookup(batch.unit_keys)[batch.unit_index.clamp(min=0)]  # [*P]
        tokens = self.unit_embedding(rows) + self.token_type_embedding(batch.token_type)  # [*P, D]
        keep = batch.mask
        if self.training and self.config.unit_dropout:
            keep = keep & unit_dropout_keep(batch, self.config.min_units)
        b, chunk = batch.batch_size, self.config.chunk
        n_chunks = max(1, math.ceil(float(batch.duration.max()) / chunk - 1e-6))
        if batch.packed:
            sample = batch.sample_index  # [N]
        else:
            sample = torch.arange(b, device=keep.device)[:, None].expand_as(keep)  # [B, L]
        grid = chunk_grid(tokens[keep], batch.timestamps[keep], sample[keep], b * n_chunks, n_chunks, chunk)
        latents = self._encode(*grid)  # [B * C, K * D]
        core_out, _ = self.core(latents.view(b, n_chunks, -1))  # [B, C, H]
        key_times = (torch.arange(n_chunks, device=keep.device, dtype=torch.float64) + 1) * chunk  # chunk ends [C]
        mask = self.context_mask(batch.query_timestamps, n_chunks)  # [B, Q, C]
        session = self.session_embedding(self.session_embedding.lookup(batch.sessions))  # [B, D]
        behavior = self._decode(core_out, key_times[None].float(), session, batch.query_timestamps, mask)
        return {"behavior": behavior}  # [B, Q, behavior_dim]

    def context_mask(self, query_times: Tensor, n_chunks: int) -> Tensor:
        """bool [..., Q, C]: a query sees its own chunk and the ``context_chunks - 1`` before it."""
        own = chunk_index(query_times, self.config.chunk).clamp(0, n_chunks - 1)[..., None]  # [..., Q, 1]
        seen = torch.arange(n_chunks, device=query_times.device)  # [C]
        return (seen <= own) & (seen > own - self.config.context_chunks)

    def _encode(self, tokens: Tensor, times: Tensor, mask: Tensor) -> Tensor:
        """Per chunk, the latents read its spike tokens: [N, S, D] -> [N, K * D]."""
        n, k = tokens.shape[0], self.config.latents_per_chunk
        latents = self.latent_embedding.weight[None].expand(n, -1, -1)  # [N, K, D]
        centre = torch.full((1, k), self.config.chunk / 2, device=tokens.device)  # [1, K]
        out = self.encoder(
            latents, tokens, key_mask=mask, rotary=self.rotary(centre), context_rotary=self.rotary(times.float())
        )  # [N, K, D]
        return out.flatten(1)

    def _decode(self, context: Tensor, context_times: Tensor, session: Tensor, times: Tensor, mask: Tensor) -> Tensor:
        """Queries (session embedding at ``times`` [B, Q]) read the core outputs [B, C, H] -> [B, Q, out]."""
        queries = session[:, None, :].expand(-1, times.shape[1], -1)  # [B, Q, D]
        out = self.decoder(
            queries, context, attn_mask=mask, rotary=self.rotary(times.float()),
            context_rotary=self.rotary(context_times.float()),
        )  # fmt: skip
        return self.readout(out)

    # ------------------------------------------------------------------ streaming
    def prepare_stream(self, unit_keys: Sequence[str], session: str, query_offsets: Tensor) -> POSSMStream:
        """:meth:`stream_constants` for units and a session named by key (the streaming protocol)."""
        rows = self.unit_embedding.lookup(list(unit_keys))  # KeyError names the missing keys
        return self.stream_constants(rows, self.session_embedding.lookup([session]), query_offsets)

    @torch.no_grad()
    def stream_constants(self, unit_rows: Tensor, session_row: Tensor, query_offsets: Tensor) -> POSSMStream:
        """Everything a stream needs that does not depend on its spikes (rebuild after changing weights).

        Args:
            unit_rows: long [U] unit-embedding rows of the stream's units.
            session_row: long [1] session-embedding row.
            query_offsets: float64 [Qc] query times relative to the chunk start.
        """
        chunk, ctx, k = self.config.chunk, self.config.context_chunks, self.config.latents_per_chunk
        device = self.readout.weight.device
        units = self.unit_embedding(unit_rows) + self.token_type_embedding.weight[TokenType.SPIKE]  # [U, D]
        latent = self.latent_embedding.weight  # [K, D]
        centre = self.rotary(torch.full((k,), chunk / 2, device=device))
        latent_q, latent_unrot = rotated_queries(self.encoder, latent, centre)
        query = self.session_embedding(session_row).expand(query_offsets.shape[0], -1)  # [Qc, D]
        query_q, query_unrot = rotated_queries(self.decoder, query, self.rotary(query_offsets.float().to(device)))
        slot_ends = (torch.arange(ctx, dtype=torch.float64) - (ctx - 2)) * chunk  # history slots' chunk ends
        return POSSMStream(
            unit_kv=self._context_kv(units), latent=latent, latent_q=latent_q,
            latent_unrot=latent_unrot, query=query, query_q=query_q, query_unrot=query_unrot,
            slot_rot=self.rotary(slot_ends.float().to(device)),
            omega=torch.tensor(self.rotary.omega, dtype=torch.float64, device=device),
            gru_weights=gru_weights(self.core),
        )  # fmt: skip

    def initial_stream_state(self) -> POSSMState:
        """The state before the first chunk (zeros, empty history)."""
        weight = self.readout.weight
        core = self.core.initial_state(1, weight.device, weight.dtype)
        history = weight.new_zeros(self.config.context_chunks, 2 * self.config.cross_heads * self.config.head_dim)
        return POSSMState(core=core, history=history, filled=0)

    @torch.no_grad()
    def stream_step(
        self, units: Tensor, times: Tensor, stream: POSSMStream, state: POSSMState
    ) -> tuple[Tensor, POSSMState]:
        """Decode one chunk: :meth:`forward`'s computation for that chunk's queries, in eval mode.

        Args:
            units: long [n] index of each spike's unit in the stream's units (``stream.unit_kv``).
            times: float64 [n] spike times relative to the chunk start, in [0, chunk).
            stream: from :meth:`stream_constants`.
            state: from :meth:`initial_stream_state` or the previous step (not modified).

        Returns:
            behaviour [Qc, behavior_dim] and the new state.
        """
        ctx = self.config.context_chunks
        # RotaryTimeEmbedding's table for float32 times, from the cached frequencies.
        angles = times.float().double()[:, None] * stream.omega  # [n, Dh/2]
        rotary = torch.stack((angles.cos(), angles.sin()), dim=-1).float()  # [n, Dh/2, 2]
        kv = stream.unit_kv[units]  # [n, 2 * H * Dh]
        latent = attend_projected(
            self.encoder, stream.latent, stream.latent_q, kv, rotary, stream.latent_unrot, mask=None
        )  # [K, D]
        y, core = step_core(self.core, latent.reshape(1, -1), state.core, stream.gru_weights)  # [1, H]
        history = torch.cat([state.history[1:], self.decoder.attention.to_kv(self.decoder.context_norm(y))])
        filled = min(state.filled + 1, ctx)
        visible = (torch.arange(ctx, device=y.device) >= ctx - filled)[None]  # [1, ctx] slots holding real chunks
        out = attend_projected(self.decoder, stream.query, stream.query_q, history, stream.slot_rot, stream.query_unrot,
                      mask=visible)  # [Qc, D]  # fmt: skip
        return self.readout(out), POSSMState(core=core, history=history, filled=filled)

    def _context_kv(self, tokens: Tensor) -> Tensor:
        """The encoder's key / value projections of context tokens [n, D] -> [n, 2 * H * Dh]."""
        return self.encoder.attention.to_kv(self.encoder.context_norm(tokens))



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
