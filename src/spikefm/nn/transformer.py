"""Pre-norm transformer blocks, the encoder that stacks them, and STNDT's spatiotemporal block.

Blocks take their parts (an :class:`~spikefm.nn.Attention`, a feed-forward module) as
arguments; :class:`TransformerEncoder` is the convenience that builds ``depth`` of them from
a handful of keywords, e.g. NDT3's ``ffn="swiglu", norm="rmsnorm", qk_norm=True, bias=False``.

Shape legend: B batch, L tokens, D model dim, T time bins, N neurons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikefm.nn.attention import Attention, AttentionWeights, RMSNorm
from spikefm.nn.dropout import FastDropout
from spikefm.nn.position import RotaryTimeEmbedding, apply_rotary, invert_rotary

__all__ = [
    "NORMS",
    "FFNS",
    "make_norm",
    "make_ffn",
    "MLP",
    "GatedMLP",
    "TransformerBlock",
    "CrossAttentionBlock",
    "attend_projected",
    "context_kv",
    "rotated_queries",
    "TorchStyleBlock",
    "TransformerEncoder",
    "SpatioTemporalBlock",
]

NORMS = ("layernorm", "rmsnorm")
FFNS = ("relu", "gelu", "swiglu", "geglu")


def make_norm(kind: str, dim: int, *, bias: bool = True) -> nn.Module:
    """``"layernorm"`` (optionally without bias) or ``"rmsnorm"`` over the last axis of width ``dim``."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim)
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


class MLP(nn.Module):
    """Two-layer feed-forward: Linear -> activation -> dropout -> Linear.

    Args:
        dim: input and output width D.
        hidden_dim: inner width.
        activation: elementwise function (``F.gelu``, ``F.relu``).
        bias: biases on both linears.
        dropout: after the activation.

    Shapes:
        [..., D] -> [..., D]
    """

    def __init__(
        self,
        *,
        dim: int,
        hidden_dim: int,
        activation: Callable[[Tensor], Tensor] = F.gelu,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = nn.Linear(dim, hidden_dim, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)
        self.drop = FastDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.drop(self.activation(self.up(x))))


class GatedMLP(nn.Module):
    """Gated linear unit feed-forward: ``down(act(gate(x)) * up(x))``.

    ``activation=F.silu`` is SwiGLU (NDT3), ``F.gelu`` is GEGLU (POYO).

    Args:
        dim: input and output width D.
        hidden_dim: inner width (the fused input projection is ``2 * hidden_dim`` wide).
        activation: gate nonlinearity.
        bias: biases on the linears.
        dropout: after the gating.

    Shapes:
        [..., D] -> [..., D]
    """

    def __init__(
        self,
        *,
        dim: int,
        hidden_dim: int,
        activation: Callable[[Tensor], Tensor] = F.silu,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = nn.Linear(dim, 2 * hidden_dim, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)
        self.drop = FastDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)  # [..., hidden] each
        if torch.is_grad_enabled():
            hidden = self.activation(gate) * value
        else:  # inference: gate in place, one [..., hidden] buffer fewer (POYO inference 2-9% faster, issue 20)
            hidden = self.activation(gate).mul_(value)
        return self.down(self.drop(hidden))


def make_ffn(kind: str, *, dim: int, hidden_dim: int, bias: bool = True, dropout: float = 0.0) -> nn.Module:
    """Feed-forward by name: ``"relu"``/``"gelu"`` (:class:`MLP`) or ``"swiglu"``/``"geglu"`` (:class:`GatedMLP`)."""
    activations = {"relu": F.relu, "gelu": F.gelu, "swiglu": F.silu, "geglu": F.gelu}
    if kind not in activations:
        raise ValueError(f"unknown ffn {kind!r}; choose one of {FFNS}")
    cls = GatedMLP if kind in ("swiglu", "geglu") else MLP
    return cls(dim=dim, hidden_dim=hidden_dim, activation=activations[kind], bias=bias, dropout=dropout)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention block: ``x + attn(norm(x))``, then ``x + ffn(norm(x))``.

    Args:
        attention: a self-attention :class:`~spikefm.nn.Attention` of width D.
        ffn: feed-forward [..., D] -> [..., D].
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_bias: bias in LayerNorm.
        dropout: on each residual branch.

    Shapes:
        forward(x [B, L, D], key_mask [B, L], attn_mask [L, L] | [B, L, L],
        rotary [B, L, Dh/2, 2]) -> [B, L, D]
    """

    def __init__(
        self,
        *,
        attention: Attention,
        ffn: nn.Module,
        norm: str = "layernorm",
        norm_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attention = attention
        self.ffn = ffn
        self.attn_norm = make_norm(norm, attention.dim, bias=norm_bias)
        self.ffn_norm = make_norm(norm, attention.dim, bias=norm_bias)
        self.drop = FastDropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        rotary: Tensor | None = None,
    ) -> Tensor:
        x = x + self.drop(self.attention(self.attn_norm(x), key_mask=key_mask, attn_mask=attn_mask, rotary=rotary))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class TorchStyleBlock(nn.Module):
    """A ``torch.nn.TransformerEncoderLayer``-style block (post-norm by default, as NDT2) on SDPA attention.

    Post-norm: ``x = norm1(x + attn(x))``, ``x = norm2(x + ffn(x))``; pre-norm:
    ``x + attn(norm1(x))``, ``x + ffn(norm2(x))``. GELU feed-forward; dropout on the
    attention probabilities and both residual branches.

    Args:
        dim: D. heads: H. ffn_dim: feed-forward width. dropout: as above.
        pre_norm: normalise before each branch instead of after the residual.

    Shapes:
        forward(x [B, L, D], attn_mask [L, L] | [B, L, L]) -> [B, L, D]
    """

    def __init__(self, *, dim: int, heads: int, ffn_dim: int, dropout: float, pre_norm: bool = False) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = Attention(dim=dim, heads=heads, dropout=dropout)
        self.ffn = make_ffn("gelu", dim=dim, hidden_dim=ffn_dim, dropout=dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        if self.pre_norm:
            x = x + self.drop(self.attention(self.norm1(x), attn_mask=attn_mask))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attention(x, attn_mask=attn_mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention block: ``x + attn(norm(x), norm_c(context))``, then ``x + ffn(norm(x))``.

    Args:
        attention: a cross-attention :class:`~spikefm.nn.Attention` (``context_dim`` set if
            the context is wider or narrower than the queries).
        ffn: feed-forward on the query stream, or ``None`` for attention only.
        context_dim: context width; default the attention's query width.
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_bias: bias in LayerNorm.
        dropout: on each residual branch.

    Shapes:
        forward(x [B, Lq, D], context [B, Lk, Dc], key_mask [B, Lk], attn_mask [Lq, Lk] |
        [B, Lq, Lk], rotary [B, Lq, Dh/2, 2], context_rotary [B, Lk, Dh/2, 2]) -> [B, Lq, D]
    """

    def __init__(
        self,
        *,
        attention: Attention,
        ffn: nn.Module | None,
        context_dim: int | None = None,
        norm: str = "layernorm",
        norm_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attention = attention
        self.ffn = ffn
        self.query_norm = make_norm(norm, attention.dim, bias=norm_bias)
        self.context_norm = make_norm(norm, context_dim or attention.dim, bias=norm_bias)
        self.ffn_norm = make_norm(norm, attention.dim, bias=norm_bias) if ffn is not None else None
        self.drop = FastDropout(dropout)

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        rotary: Tensor | None = None,
        context_rotary: Tensor | None = None,
    ) -> Tensor:
        attended = self.attention(
            self.query_norm(x),
            self.context_norm(context),
            key_mask=key_mask,
            attn_mask=attn_mask,
            rotary=rotary,
            context_rotary=context_rotary,
        )
        x = x + self.drop(attended)
        if self.ffn is None:
            return x
        return x + self.drop(self.ffn(self.ffn_norm(x)))


def rotated_queries(block: CrossAttentionBlock, x: Tensor, table: Tensor) -> tuple[Tensor, Tensor]:
    """A block's queries for fixed tokens ``x`` [L, D], rotated by ``table`` [L, Dh/2, 2]: [1, H, L, Dh],
    and the inverse table (for :func:`attend_projected`, computed once per stream)."""
    attention = block.attention
    q = attention.to_q(block.query_norm(x)).view(1, x.shape[0], attention.heads, -1).transpose(1, 2)
    return apply_rotary(q, table), invert_rotary(table)


def context_kv(block: CrossAttentionBlock, context: Tensor) -> Tensor:
    """A block's key / value projections of context tokens [n, Dc] -> [n, 2 * H * Dh] (before rotation),
    what :func:`attend_projected` takes as ``kv`` (cache it for context that does not change)."""
    return block.attention.to_kv(block.context_norm(context))


def attend_projected(
    block: CrossAttentionBlock, residual: Tensor, q: Tensor, kv: Tensor, rotary: Tensor, unrotary: Tensor,
    mask: Tensor | None,
) -> Tensor:
    """``block`` (eval mode, rotated values, no QK-norm) with its queries and context projected ahead.

    A streaming model (POSSM, unified) projects and rotates its fixed queries once per stream
    and caches its context's key / value projections; per chunk only the new keys rotate and
    one SDPA call runs. Equals ``block(x, context, rotary=..., context_rotary=...)``.

    Args:
        block: a :class:`CrossAttentionBlock` whose attention has ``rotate_value=True``.
        residual: [L, D] the query tokens. q: [1, H, L, Dh] their rotated projections.
        kv: [n, 2 * H * Dh] the context's key / value projections (before rotation).
        rotary: [n, Dh/2, 2] the context's rotary table. unrotary: [L, Dh/2, 2] inverse query table.
        mask: bool [1, n] visible context tokens, or None for all.

    Returns:
        [L, D]; with no context token the attention output is zero, as :class:`Attention` gives.
    """
    attention = block.attention
    heads = attention.heads
    if kv.shape[0] == 0:
        out = q.new_zeros(q.shape)  # [1, H, L, Dh]
    else:
        kv = apply_rotary(kv.view(1, -1, 2 * heads, attention.head_dim).transpose(1, 2), rotary)  # [1, 2H, n, Dh]
        out = F.scaled_dot_product_attention(q, kv[:, :heads], kv[:, heads:], attn_mask=mask)  # [1, H, L, Dh]
    out = apply_rotary(out, unrotary)
    x = residual + attention.to_out(out.transpose(1, 2).flatten(2))[0]  # [L, D]
    return x if block.ffn is None else x + block.ffn(block.ffn_norm(x))


class TransformerEncoder(nn.Module):
    """A stack of pre-norm :class:`TransformerBlock` s with a final norm.

    Args:
        dim: token width D.
        depth: number of blocks.
        heads: attention heads.
        head_dim: per-head width; default ``dim // heads``.
        ffn_dim: feed-forward inner width; default ``4 * dim``.
        ffn: ``"relu"``, ``"gelu"`` (NDT1/NDT2), ``"swiglu"`` (NDT3) or ``"geglu"`` (POYO).
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        qk_norm: normalise queries and keys per head (NDT3).
        bias: biases in every linear and LayerNorm (NDT3: False).
        dropout: residual-branch dropout.
        attn_dropout: attention-probability dropout.
        rotary: a :class:`~spikefm.nn.RotaryTimeEmbedding` to apply from ``times`` in
            forward, or ``None`` for no rotary (then positions come from added embeddings).
        rotate_value: rotate values too (POYO); only with ``rotary``.
        final_norm: end with a norm (standard for pre-norm stacks).

    Shapes:
        forward(x [B, L, D], key_mask [B, L], attn_mask [L, L] | [B, L, L], times [B, L]
        seconds) -> [B, L, D]
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        heads: int,
        head_dim: int | None = None,
        ffn_dim: int | None = None,
        ffn: str = "gelu",
        norm: str = "layernorm",
        qk_norm: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        rotary: RotaryTimeEmbedding | None = None,
        rotate_value: bool = False,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        if rotate_value and rotary is None:
            raise ValueError("rotate_value=True needs a rotary embedding; pass rotary=RotaryTimeEmbedding(...)")
        self.rotary = rotary
        self.blocks = nn.ModuleList(
            TransformerBlock(
                attention=Attention(
                    dim=dim,
                    heads=heads,
                    head_dim=head_dim,
                    bias=bias,
                    qk_norm=qk_norm,
                    rotate_value=rotate_value,
                    dropout=attn_dropout,
                ),
                ffn=make_ffn(ffn, dim=dim, hidden_dim=ffn_dim or 4 * dim, bias=bias, dropout=dropout),
                norm=norm,
                norm_bias=bias,
                dropout=dropout,
            )
            for _ in range(depth)
        )
        self.final_norm = make_norm(norm, dim, bias=bias) if final_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        times: Tensor | None = None,
    ) -> Tensor:
        if (times is None) != (self.rotary is None):
            have = "has a rotary embedding" if self.rotary is not None else "has no rotary embedding"
            raise ValueError(
                f"times are needed exactly when the encoder has a rotary embedding; this one {have} and times "
                f"{'were' if times is not None else 'were not'} given (build it with rotary=RotaryTimeEmbedding(...))"
            )
        rotary = self.rotary(times) if self.rotary is not None else None  # [B, L, Dh/2, 2]
        for block in self.blocks:
            x = block(x, key_mask=key_mask, attn_mask=attn_mask, rotary=rotary)
        return self.final_norm(x)


class SpatioTemporalBlock(nn.Module):
    """STNDT layer: attention over time, then neurons mixed by spatial attention weights.

    Temporal tokens are time bins of width N (one value per neuron); spatial tokens are
    neurons of width T (one value per bin). Pre-norm, as STNDT (trungle93/STNDT
    ``src/model.py``) with ``PRE_NORM``:

    1. ``x = x + attn_t(norm(x))``, then ``x = x + ffn_t(norm(x))`` over the T time tokens.
    2. ``W = softmax(q k^T / sqrt(d))`` over the N spatial tokens (heads averaged) [B, N, N].
    3. ``x = x + (W @ norm(x)^T)^T`` - neuron ``i`` becomes a W-weighted mix of neurons.
    4. ``x = x + ffn_s(norm(x))``.

    The spatial tokens default to the block's input ``x`` transposed (STNDT feeds its spatial
    embedding to the first layer and the previous layer's output to the rest).

    Args:
        dim: N, neurons per temporal token.
        length: T, bins per spatial token.
        heads: heads for both attentions (each width must divide, or pass the head dims).
        ffn_dim: inner width of both feed-forwards (STNDT ``HIDDEN_SIZE``).
        ffn: feed-forward kind (STNDT: ``"relu"``).
        temporal_head_dim: per-head width of the temporal attention; default ``dim // heads``.
        spatial_head_dim: per-head width of the spatial attention; default ``length // heads``.
        dropout: residual-branch dropout.

    Shapes:
        forward(x [B, T, N], spatial [B, N, T] | None, key_mask [B, T], attn_mask [T, T],
        unit_mask [B, N]) -> [B, T, N]
    """

    def __init__(
        self,
        *,
        dim: int,
        length: int,
        heads: int,
        ffn_dim: int,
        ffn: str = "relu",
        temporal_head_dim: int | None = None,
        spatial_head_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        temporal = Attention(dim=dim, heads=heads, head_dim=temporal_head_dim)
        self.temporal = TransformerBlock(
            attention=temporal, ffn=make_ffn(ffn, dim=dim, hidden_dim=ffn_dim, dropout=dropout), dropout=dropout
        )
        self.spatial_weights = AttentionWeights(dim=length, heads=heads, head_dim=spatial_head_dim)
        self.spatial_norm = nn.LayerNorm(length)
        self.mix_norm = nn.LayerNorm(dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = make_ffn(ffn, dim=dim, hidden_dim=ffn_dim, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.length = length

    def forward(
        self,
        x: Tensor,
        spatial: Tensor | None = None,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        unit_mask: Tensor | None = None,
    ) -> Tensor:
        if x.shape[1] != self.length:
            raise ValueError(f"STNDT spatial tokens are {self.length} bins wide, got {x.shape[1]} time steps")
        spatial = x.transpose(1, 2) if spatial is None else spatial  # [B, N, T], the layer's input
        x = self.temporal(x, key_mask=key_mask, attn_mask=attn_mask)  # [B, T, N]
        weights = self.spatial_weights(self.spatial_norm(spatial), key_mask=unit_mask)  # [B, N, N]
        mixed = torch.bmm(weights, self.mix_norm(x).transpose(1, 2)).transpose(1, 2)  # [B, N, T] -> [B, T, N]
        x = x + self.drop(mixed)
        return x + self.drop(self.ffn(self.ffn_norm(x)))

    @staticmethod
    def stack_forward(
        blocks: Sequence[SpatioTemporalBlock], x: Tensor, spatial: Tensor, **masks: Tensor | None
    ) -> Tensor:
        """STNDT's encoder loop: the first block reads ``spatial``, later ones ``x`` transposed."""
        for i, block in enumerate(blocks):
            x = block(x, spatial if i == 0 else None, **masks)
        return x
