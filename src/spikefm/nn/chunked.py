"""The pieces of POSSM's chunked, causal pipeline around a recurrent core, for any model that cuts
spike tokens into fixed-length chunks (POSSM, unified).

The two cross-attention blocks (:func:`chunk_blocks`). Offline: a few latents per chunk read the
chunk's tokens (:func:`encode_chunks`), a recurrent core runs over the chunks, and queries read the
core outputs of their own chunk and the ones before it (:func:`context_mask`,
:func:`query_context_mask`, :func:`read_chunks`), keyed at the chunks' end times (:func:`chunk_ends`).
Streaming: the same computation one chunk at a time, with the core outputs' decoder keys / values
kept in a fixed-size history (:func:`push_history`, :func:`history_slot_ends`) and rotary tables
from cached frequencies (:func:`stream_rotary`): :func:`stream_constants` once per stream, then
:func:`stream_chunk` per chunk.

Shape legend: C chunks, K latents per chunk, N (sample, chunk) rows, S most tokens in a chunk,
D width, Q queries, Dh head width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spikefm.nn.attention import Attention
from spikefm.nn.chunking import chunk_index
from spikefm.nn.recurrent import gru_weights, step_core
from spikefm.nn.transformer import CrossAttentionBlock, attend_projected, context_kv, make_ffn, rotated_queries

__all__ = [
    "chunk_blocks", "count_chunks", "chunk_ends", "context_mask", "query_context_mask", "encode_chunks", "read_chunks",
    "stream_rotary", "history_slot_ends", "push_history", "stream_constants", "stream_chunk", "ChunkStreamState",
]  # fmt: skip


def chunk_blocks(
    *, dim: int, heads: int, head_dim: int, core_dim: int, dropout: float
) -> tuple[CrossAttentionBlock, CrossAttentionBlock]:
    """The encoder (latents [.., D] <- a chunk's tokens [.., D]) and the decoder (queries [.., D] <- core
    outputs [.., core_dim]): pre-norm cross-attention with rotated values and a GEGLU feed-forward of
    width ``4 * dim`` (POSSM's blocks), built in that order (encoder first)."""

    def block(context_dim: int) -> CrossAttentionBlock:
        attention = Attention(dim=dim, heads=heads, head_dim=head_dim, context_dim=context_dim, rotate_value=True)
        ffn = make_ffn("geglu", dim=dim, hidden_dim=4 * dim, dropout=dropout)
        return CrossAttentionBlock(attention=attention, ffn=ffn, context_dim=context_dim)

    return block(dim), block(core_dim)


def count_chunks(duration: float, chunk: float) -> int:
    """Chunks covering ``duration`` seconds (at least one; a last edge within 1e-6 chunks is not a new chunk)."""
    return max(1, math.ceil(duration / chunk - 1e-6))


def chunk_ends(n_chunks: int, chunk: float, device: torch.device | None = None) -> Tensor:
    """float64 [C] the chunks' end times (the core output of chunk c is keyed at its end)."""
    return (torch.arange(n_chunks, dtype=torch.float64, device=device) + 1) * chunk


def context_mask(query_chunk: Tensor, n_chunks: int, context: int, shift: int = 0) -> Tensor:
    """bool [..., C]: a query of chunk ``c`` sees chunks ``c - shift - context + 1 .. c - shift``.

    Args:
        query_chunk: long [...] each query's chunk.
        n_chunks: C. context: chunks a query reads (>= 1).
        shift: 0 reads its own chunk; 1 only earlier ones (forward prediction).
    """
    own = query_chunk[..., None] - shift  # [..., 1]
    seen = torch.arange(n_chunks, device=query_chunk.device)  # [C]
    return (seen <= own) & (seen > own - context)


def query_context_mask(query_times: Tensor, chunk: float, n_chunks: int, context: int) -> Tensor:
    """bool [..., Q, C]: a query at ``query_times`` [..., Q] (s) sees its own chunk and the
    ``context - 1`` before it (:func:`context_mask` of its :func:`~spikefm.nn.chunking.chunk_index`; a
    query past the last chunk counts to the last)."""
    own = chunk_index(query_times, chunk).clamp(0, n_chunks - 1)  # [..., Q]
    return context_mask(own, n_chunks, context)


def encode_chunks(
    encoder: nn.Module, latents: Tensor, rotary: nn.Module, tokens: Tensor, times: Tensor, mask: Tensor, chunk: float
) -> Tensor:
    """Per chunk, ``latents`` [K, D] placed at the chunk centre read its tokens: [N, S, D] -> [N, K * D].

    Args:
        encoder: a :class:`~spikefm.nn.CrossAttentionBlock` (latents <- tokens).
        rotary: a :class:`~spikefm.nn.RotaryTimeEmbedding`.
        tokens: [N, S, D]; times: [N, S] seconds into the chunk; mask: bool [N, S] real tokens
            (:func:`spikefm.nn.chunking.chunk_grid` gives all three).
    """
    n, k = tokens.shape[0], latents.shape[0]
    centre = torch.full((1, k), chunk / 2, device=tokens.device)  # [1, K]
    out = encoder(latents[None].expand(n, -1, -1), tokens, key_mask=mask, rotary=rotary(centre),
                  context_rotary=rotary(times.float()))  # fmt: skip
    return out.flatten(1)  # [N, K * D]


def read_chunks(
    decoder: nn.Module, rotary: nn.Module, queries: Tensor, query_times: Tensor, context: Tensor,
    context_times: Tensor, mask: Tensor,
) -> Tensor:
    """Queries [..., Q, D] at ``query_times`` [..., Q] read core outputs [..., C, H] keyed at
    ``context_times`` [..., C] where ``mask`` [..., Q, C] allows -> [..., Q, D]."""
    return decoder(queries, context, attn_mask=mask, rotary=rotary(query_times.float()),
                   context_rotary=rotary(context_times.float()))  # fmt: skip


def stream_rotary(times: Tensor, omega: Tensor) -> Tensor:
    """:class:`~spikefm.nn.RotaryTimeEmbedding`'s table [n, Dh/2, 2] for float32 times [n], from its
    cached float64 frequencies ``omega`` [Dh/2] (what the offline pass computes, without a module call)."""
    angles = times.float().double()[:, None] * omega  # [n, Dh/2]
    return torch.stack((angles.cos(), angles.sin()), dim=-1).float()


def history_slot_ends(context: int, chunk: float) -> Tensor:
    """float64 [context] the history slots' chunk ends relative to the newest chunk's start (the
    newest slot ends at ``chunk``), so a query's rotary offset into its chunk lines up."""
    return (torch.arange(context, dtype=torch.float64) - (context - 2)) * chunk


def push_history(decoder: nn.Module, history: Tensor, core_out: Tensor, filled: int) -> tuple[Tensor, int, Tensor]:
    """Append one chunk's core output [1, H] to the decoder-key/value ``history`` [context, 2 * heads * Dh].

    Returns:
        the new history, the number of slots holding real chunks, and bool [1, context] those slots.
    """
    context = history.shape[0]
    history = torch.cat([history[1:], context_kv(decoder, core_out)])
    filled = min(filled + 1, context)
    visible = (torch.arange(context, device=history.device) >= context - filled)[None]
    return history, filled, visible


@dataclass
class ChunkStreamState:
    """A stream's state between chunks: the core's state, the decoder keys / values of its last
    ``context`` outputs [context, 2 * heads * Dh], and how many of those slots hold real chunks."""

    core: Tensor
    history: Tensor
    filled: int = 0

    @classmethod
    def initial(cls, core: nn.Module, decoder: nn.Module, context: int, like: Tensor) -> "ChunkStreamState":
        """Before a stream's first chunk: zero core state, empty history (``like`` gives device and dtype)."""
        width = 2 * decoder.attention.heads * decoder.attention.head_dim
        return cls(core.initial_state(1, like.device, like.dtype), like.new_zeros(context, width))


def stream_constants(
    encoder: nn.Module, decoder: nn.Module, rotary: nn.Module, core: nn.Module, latents: Tensor, queries: Tensor,
    query_offsets: Tensor, chunk: float, context: int,
) -> dict[str, Any]:
    """What :func:`stream_chunk` needs that does not depend on the spikes (rebuild after changing weights).

    Args:
        latents: [K, D] the chunk latents. queries: [Qc, D] the output queries of one chunk.
        query_offsets: [Qc] their times relative to the chunk start (s).
    """
    centre = torch.full((latents.shape[0],), chunk / 2, device=latents.device)
    return {
        "latent": latents, "latent_qr": rotated_queries(encoder, latents, rotary(centre)),
        "query": queries, "query_qr": rotated_queries(decoder, queries, rotary(query_offsets.float())),
        "slot_rot": rotary(history_slot_ends(context, chunk).float().to(latents.device)),
        "omega": torch.tensor(rotary.omega, dtype=torch.float64, device=latents.device), "gru": gru_weights(core),
    }  # fmt: skip


def stream_chunk(
    encoder: nn.Module, decoder: nn.Module, core: nn.Module, stream: dict[str, Any], kv: Tensor, times: Tensor,
    state: ChunkStreamState,
) -> tuple[Tensor, ChunkStreamState]:
    """One chunk of the offline pass, in eval mode: latents read the chunk's tokens, the core steps,
    the chunk's queries read the last ``context`` core outputs.

    Args:
        stream: from :func:`stream_constants`.
        kv: [n, 2 * heads * Dh] the encoder's key / value projections of the chunk's tokens.
        times: [n] their times relative to the chunk start (s).
        state: after the previous chunk (not modified).

    Returns:
        query outputs [Qc, D] and the state after this chunk.
    """
    (latent_q, latent_unrot), (query_q, query_unrot) = stream["latent_qr"], stream["query_qr"]
    rotary = stream_rotary(times, stream["omega"])  # [n, Dh/2, 2]
    latent = attend_projected(encoder, stream["latent"], latent_q, kv, rotary, latent_unrot, mask=None)  # [K, D]
    y, core_state = step_core(core, latent.reshape(1, -1), state.core, stream["gru"])  # [1, H]
    history, filled, visible = push_history(decoder, state.history, y, state.filled)
    out = attend_projected(decoder, stream["query"], query_q, history, stream["slot_rot"], query_unrot, mask=visible)
    return out, ChunkStreamState(core_state, history, filled)
