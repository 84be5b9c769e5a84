"""PerceiverIO with rotary time (POYO), on padded or packed variable-length batches.

Encoder cross-attention (latents <- input tokens), ``depth`` self-attention blocks over the
latents, decoder cross-attention (output queries <- latents). Every attention rotates
queries and keys by their timestamps; following POYO (torch_brain ``models/poyo.py``) the
encoder and the latent self-attention also rotate values (and inverse-rotate their output),
the decoder does not. Feed-forwards are GEGLU x4 with pre-LayerNorm.

Two input layouts give the same numbers:

* padded: inputs [B, L, D] + ``input_mask`` [B, L], latents [B, M, D], queries [B, Q, D];
* packed: inputs [N_in, D], latents [N_lat, D], queries [N_q, D], each with its
  ``*_cu_seqlens`` [B + 1]. The input tokens (thousands per sample) stay packed through the
  encoder's norm, projections, rotations and attention (one SDPA call per sample on its own
  keys), so no work is spent on padding. Latents and queries (a few per sample) are padded
  per sample.

Either layout can give the inputs as a table of distinct rows plus ``input_index`` (POYO: a
spike token is its unit's embedding + its token type's, so ~30k tokens share a few hundred
rows); the encoder then normalises and projects each row once and gathers per token. Indexed
padded inputs are packed internally (only the index and times move), so both layouts compute
real keys only.

Shape legend: B batch, L input tokens, M latents, Q output queries, D width, Dh head dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikefm.nn.attention import Attention, unpack
from spikefm.nn.position import RotaryTimeEmbedding
from spikefm.nn.transformer import CrossAttentionBlock, TransformerBlock, make_ffn

__all__ = ["PerceiverIO", "latent_grid"]


def latent_grid(embedding: nn.Embedding, duration: Tensor, *, step: float) -> tuple[Tensor, Tensor]:
    """POYO's latents: every learned latent of ``embedding`` repeated at the centre of each ``step`` s.

    Args:
        embedding: K learned latents (torch_brain ``latent_emb``, ``num_latents_per_step`` rows).
        duration: [B] window lengths in seconds; the grid covers the longest.
        step: seconds between latent groups (POYO: 0.125).

    Returns:
        latents [B, S * K, D] and their times [B, S * K] (S = steps covering the longest window).
    """
    per_step = embedding.num_embeddings
    n_steps = max(1, math.ceil(float(duration.max()) / step - 1e-6))
    centres = (torch.arange(n_steps, device=duration.device) + 0.5) * step  # [S]
    times = centres.repeat_interleave(per_step)  # [S * K]
    index = torch.arange(per_step, device=times.device).repeat(n_steps)  # [S * K]
    batch = duration.shape[0]
    return embedding(index)[None].expand(batch, -1, -1), times[None].expand(batch, -1)


class PerceiverIO(nn.Module):
    """POYO's PerceiverIO backbone.

    Args:
        dim: token width D (inputs, latents and queries share it).
        depth: number of latent self-attention blocks.
        cross_heads: heads of the encoder and decoder cross-attentions (torch_brain default 2;
            POYO's 11.8M config: 4).
        self_heads: heads of the latent self-attention (POYO: 8).
        head_dim: per-head width Dh (POYO: 64).
        ffn: feed-forward kind (POYO: ``"geglu"``).
        ffn_mult: feed-forward inner width = ``ffn_mult * dim`` (POYO: 4).
        dropout: residual-branch dropout (POYO ``ffn_dropout``).
        attn_dropout: attention-probability dropout (POYO ``atn_dropout``).
        rotary: rotary time embedding shared by all attentions; default POYO's
            ``RotaryTimeEmbedding(head_dim=head_dim)`` (half of each head, 1e-4 s .. 2.06 s).

    Shapes:
        forward(inputs, input_times, latents, latent_times, queries, query_times) with
        tokens [B, L|M|Q, D] and times [B, L|M|Q] (padded) or [N, D] and [N] (packed)
        -> [B, Q, D] or [N_q, D].
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        cross_heads: int = 2,
        self_heads: int = 8,
        head_dim: int = 64,
        ffn: str = "geglu",
        ffn_mult: int = 4,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        rotary: RotaryTimeEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.rotary = rotary if rotary is not None else RotaryTimeEmbedding(head_dim=head_dim)
        if self.rotary.head_dim != head_dim:
            raise ValueError(f"rotary.head_dim {self.rotary.head_dim} != head_dim {head_dim}")

        def attention(heads: int, rotate_value: bool) -> Attention:
            return Attention(dim=dim, heads=heads, head_dim=head_dim, rotate_value=rotate_value, dropout=attn_dropout)

        def feedforward() -> nn.Module:
            return make_ffn(ffn, dim=dim, hidden_dim=ffn_mult * dim, dropout=dropout)

        self.encoder = CrossAttentionBlock(attention=attention(cross_heads, True), ffn=feedforward())
        self.process = nn.ModuleList(
            TransformerBlock(attention=attention(self_heads, True), ffn=feedforward(), dropout=dropout)
            for _ in range(depth)
        )
        self.decoder = CrossAttentionBlock(attention=attention(cross_heads, False), ffn=feedforward())

    def forward(
        self,
        inputs: Tensor,
        input_times: Tensor,
        latents: Tensor,
        latent_times: Tensor,
        queries: Tensor,
        query_times: Tensor,
        *,
        input_mask: Tensor | None = None,
        latent_mask: Tensor | None = None,
        input_index: Tensor | None = None,
        input_cu_seqlens: Tensor | None = None,
        latent_cu_seqlens: Tensor | None = None,
        query_cu_seqlens: Tensor | None = None,
    ) -> Tensor:
        """Run encoder -> process -> decoder.

        Args:
            inputs, input_times: input tokens and their times in seconds.
            latents, latent_times: latent tokens (learned, built by the model) and times.
            queries, query_times: output queries and times.
            input_mask: [B, L] True = real input token (padded layout only).
            latent_mask: [B, M] True = real latent (padded layout only; default all real).
            input_index: long [B, L] (padded) or [N_in] (packed): ``inputs`` is then a table
                [R, D] of distinct token rows and input token ``i`` is row ``input_index[i]``;
                the encoder's context norm and key/value projection run once per row.
            input_cu_seqlens, latent_cu_seqlens, query_cu_seqlens: [B + 1] cumulative
                lengths; give all three for the packed layout, none for the padded one.
        """
        packed = [c is not None for c in (input_cu_seqlens, latent_cu_seqlens, query_cu_seqlens)]
        if any(packed):
            if not all(packed) or latents.ndim != 2 or input_mask is not None or latent_mask is not None:
                raise ValueError(
                    "packed layout: pass 2-D [N, D] inputs/latents/queries with all three *_cu_seqlens "
                    "and no input_mask/latent_mask (padding masks are for the [B, L, D] layout)"
                )
            return self._forward_packed(
                inputs, input_times, latents, latent_times, queries, query_times, input_index,
                input_cu_seqlens, latent_cu_seqlens, query_cu_seqlens,
            )  # fmt: skip
        if latents.ndim != 3 or (inputs.ndim != 3 and input_index is None):
            raise ValueError(
                f"padded layout expects [B, L, D] inputs, got {tuple(inputs.shape)}; the packed layout needs *_cu_seqlens"
            )
        cu_seqlens = None
        if input_index is not None and input_mask is not None:
            # Indexed inputs: keep only the real tokens' (small) index and times, packed, so the
            # encoder never projects, rotates or attends to a padded key (holes in the mask too).
            input_index, input_times = input_index[input_mask], input_times[input_mask]  # [N]
            cu_seqlens = F.pad(input_mask.sum(1).cumsum(0), (1, 0)).to(torch.int32)  # [B + 1]
            input_mask = None
        latents = self._encode(latents, self.rotary(latent_times), inputs, self._input_rotary(input_times, input_index),
                               index=input_index, key_mask=input_mask, cu_seqlens=cu_seqlens)
        return self._process_decode(latents, self.rotary(latent_times), latent_mask, queries, query_times)

    def _forward_packed(
        self,
        inputs: Tensor,
        input_times: Tensor,
        latents: Tensor,
        latent_times: Tensor,
        queries: Tensor,
        query_times: Tensor,
        input_index: Tensor | None,
        input_cu: Tensor,
        latent_cu: Tensor,
        query_cu: Tensor,
    ) -> Tensor:
        # Input tokens stay packed through every token-wise step (norm, projection, rotation);
        # latents and queries (a few per sample) are right-padded per sample.
        latents, latent_mask = unpack(latents, latent_cu)  # [B, M, D], [B, M]
        latent_rot = self.rotary(unpack(latent_times, latent_cu)[0])  # [B, M, P, 2]
        queries, query_mask = unpack(queries, query_cu)  # [B, Q, D], [B, Q]
        latent_mask = None if bool(latent_mask.all()) else latent_mask
        latents = self._encode(latents, latent_rot, inputs, self._input_rotary(input_times, input_index),
                               index=input_index, key_mask=None, cu_seqlens=input_cu)
        out = self._process_decode(latents, latent_rot, latent_mask, queries, unpack(query_times, query_cu)[0])
        return out[query_mask]  # [N_q, D]

    def _input_rotary(self, input_times: Tensor, input_index: Tensor | None) -> Tensor:
        # Indexed inputs take the fused gather + rotate, which rotates only the rotated pairs.
        return self.rotary(input_times, compact=input_index is not None)

    def _encode(
        self,
        latents: Tensor,
        latent_rot: Tensor,
        inputs: Tensor,
        input_rot: Tensor,
        *,
        index: Tensor | None,
        key_mask: Tensor | None,
        cu_seqlens: Tensor | None,
    ) -> Tensor:
        """The encoder block (pre-norm cross-attention + feed-forward) with packed / indexed inputs."""
        block = self.encoder
        attended = block.attention(
            block.query_norm(latents), block.context_norm(inputs), key_mask=key_mask, rotary=latent_rot,
            context_rotary=input_rot, context_index=index, context_cu_seqlens=cu_seqlens,
        )  # fmt: skip
        latents = latents + block.drop(attended)  # [B, M, D]
        return latents + block.drop(block.ffn(block.ffn_norm(latents)))

    def _process_decode(
        self, latents: Tensor, latent_rot: Tensor, latent_mask: Tensor | None, queries: Tensor, query_times: Tensor
    ) -> Tensor:
        for block in self.process:
            latents = block(latents, key_mask=latent_mask, rotary=latent_rot)
        return self.decoder(
            queries, latents, key_mask=latent_mask, rotary=self.rotary(query_times), context_rotary=latent_rot
        )
