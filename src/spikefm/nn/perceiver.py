"""PerceiverIO with rotary time (POYO), on padded or packed variable-length batches.

Encoder cross-attention (latents <- input tokens), ``depth`` self-attention blocks over the
latents, decoder cross-attention (output queries <- latents). Every attention rotates
queries and keys by their timestamps; following POYO (torch_brain ``models/poyo.py``) the
encoder and the latent self-attention also rotate values (and inverse-rotate their output),
the decoder does not. Feed-forwards are GEGLU x4 with pre-LayerNorm.

Two input layouts give the same numbers:

* padded: inputs [B, L, D] + ``input_mask`` [B, L], latents [B, M, D], queries [B, Q, D];
* packed: inputs [N_in, D], latents [N_lat, D], queries [N_q, D], each with its
  ``*_cu_seqlens`` [B + 1]; attention is restricted to each sample by a block-diagonal mask
  built from sample indices (memory O(N_q x N_k) for the mask, fine for moderate batches).

Shape legend: B batch, L input tokens, M latents, Q output queries, D width, Dh head dim.
"""

from __future__ import annotations

from torch import Tensor, nn

from spikefm.nn.attention import Attention, block_diagonal_mask, sequence_ids
from spikefm.nn.position import RotaryTimeEmbedding
from spikefm.nn.transformer import CrossAttentionBlock, TransformerBlock, make_ffn

__all__ = ["PerceiverIO"]


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
            input_cu_seqlens, latent_cu_seqlens, query_cu_seqlens: [B + 1] cumulative
                lengths; give all three for the packed layout, none for the padded one.
        """
        packed = [c is not None for c in (input_cu_seqlens, latent_cu_seqlens, query_cu_seqlens)]
        if any(packed):
            if not all(packed) or inputs.ndim != 2 or input_mask is not None or latent_mask is not None:
                raise ValueError(
                    "packed layout: pass 2-D [N, D] inputs/latents/queries with all three *_cu_seqlens "
                    "and no input_mask/latent_mask (padding masks are for the [B, L, D] layout)"
                )
            return self._forward_packed(
                inputs, input_times, latents, latent_times, queries, query_times,
                input_cu_seqlens, latent_cu_seqlens, query_cu_seqlens,
            )  # fmt: skip
        if inputs.ndim != 3:
            raise ValueError(
                f"padded layout expects [B, L, D] inputs, got {tuple(inputs.shape)}; the packed layout needs *_cu_seqlens"
            )
        return self._run(
            inputs, self.rotary(input_times), latents, self.rotary(latent_times), queries, self.rotary(query_times),
            enc_mask=None, proc_mask=None, dec_mask=None, input_mask=input_mask, latent_mask=latent_mask,
        )  # fmt: skip

    def _forward_packed(
        self,
        inputs: Tensor,
        input_times: Tensor,
        latents: Tensor,
        latent_times: Tensor,
        queries: Tensor,
        query_times: Tensor,
        input_cu: Tensor,
        latent_cu: Tensor,
        query_cu: Tensor,
    ) -> Tensor:
        in_ids, lat_ids, q_ids = sequence_ids(input_cu), sequence_ids(latent_cu), sequence_ids(query_cu)
        out = self._run(
            inputs[None], self.rotary(input_times)[None],  # [1, N_in, D], [1, N_in, Dh/2, 2]
            latents[None], self.rotary(latent_times)[None],
            queries[None], self.rotary(query_times)[None],
            enc_mask=block_diagonal_mask(lat_ids, in_ids),  # [N_lat, N_in]
            proc_mask=block_diagonal_mask(lat_ids, lat_ids),  # [N_lat, N_lat]
            dec_mask=block_diagonal_mask(q_ids, lat_ids),  # [N_q, N_lat]
            input_mask=None, latent_mask=None,
        )  # fmt: skip
        return out[0]  # [N_q, D]

    def _run(
        self,
        inputs: Tensor,
        input_rot: Tensor,
        latents: Tensor,
        latent_rot: Tensor,
        queries: Tensor,
        query_rot: Tensor,
        *,
        enc_mask: Tensor | None,
        proc_mask: Tensor | None,
        dec_mask: Tensor | None,
        input_mask: Tensor | None,
        latent_mask: Tensor | None,
    ) -> Tensor:
        latents = self.encoder(
            latents, inputs, key_mask=input_mask, attn_mask=enc_mask, rotary=latent_rot, context_rotary=input_rot
        )
        for block in self.process:
            latents = block(latents, key_mask=latent_mask, attn_mask=proc_mask, rotary=latent_rot)
        return self.decoder(
            queries, latents, key_mask=latent_mask, attn_mask=dec_mask, rotary=query_rot, context_rotary=latent_rot
        )
