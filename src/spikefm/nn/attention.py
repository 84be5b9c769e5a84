"""Multi-head attention on ``scaled_dot_product_attention``, its masks, and packing helpers.

Mask convention everywhere in :mod:`spikefm.nn`: **boolean, True = real token / may attend**
(the same sense as ``Tokens``' validity mask and SDPA's boolean ``attn_mask``).

* ``key_mask`` [B, Lk]: which keys are real (padding is False).
* ``attn_mask`` [Lq, Lk] or [B, Lq, Lk]: which query may look at which key (causal, local
  window, block-diagonal for packed sequences).

A query row with no key to attend to (an empty sample) returns zeros instead of NaN.

Shape legend: B batch, Lq / Lk query / key tokens, D model dim, H heads, Dh head dim,
N total packed tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikefm.nn.position import apply_rotary, invert_rotary

__all__ = [
    "RMSNorm",
    "Attention",
    "AttentionWeights",
    "combine_masks",
    "causal_mask",
    "local_window_mask",
    "time_causal_mask",
    "block_diagonal_mask",
    "sequence_ids",
    "pack",
    "unpack",
]


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (no mean subtraction, no bias).

    Args:
        dim: width of the last axis.
        eps: added to the mean square.

    Shapes:
        [..., dim] -> [..., dim]
    """

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).to(x.dtype) * self.weight


# ---------------------------------------------------------------------------- masks


def causal_mask(q_len: int, k_len: int | None = None, *, device: torch.device | None = None) -> Tensor:
    """Query ``i`` may see key ``j <= i + (k_len - q_len)`` (queries aligned to the last keys).

    Returns:
        bool [q_len, k_len].
    """
    k_len = q_len if k_len is None else k_len
    q = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    return torch.arange(k_len, device=device)[None, :] <= q


def local_window_mask(
    length: int, *, backward: int | None, forward: int | None, device: torch.device | None = None
) -> Tensor:
    """NDT1's context window: step ``i`` sees steps ``i - backward .. i + forward``.

    Args:
        length: number of time steps L.
        backward: how many past steps are visible (``None`` = all).
        forward: how many future steps are visible (``None`` = all; 0 = causal).

    Returns:
        bool [L, L].
    """
    for name, value in (("backward", backward), ("forward", forward)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or None (unlimited), got {value}")
    offset = torch.arange(length, device=device)[None, :] - torch.arange(length, device=device)[:, None]  # key - query
    mask = torch.ones(length, length, dtype=torch.bool, device=device)
    if forward is not None:
        mask &= offset <= forward
    if backward is not None:
        mask &= offset >= -backward
    return mask


def time_causal_mask(q_times: Tensor, k_times: Tensor) -> Tensor:
    """A query at time t sees keys at times <= t.

    Args:
        q_times: [..., Lq] seconds.
        k_times: [..., Lk] seconds.

    Returns:
        bool [..., Lq, Lk].
    """
    return k_times[..., None, :] <= q_times[..., :, None]


def sequence_ids(cu_seqlens: Tensor) -> Tensor:
    """Sample index of every packed token from cumulative lengths.

    Args:
        cu_seqlens: long [B + 1], ``0 = cu[0] <= cu[1] <= ... <= cu[B] = N``.

    Returns:
        long [N].
    """
    if cu_seqlens.ndim != 1 or cu_seqlens.numel() < 1 or int(cu_seqlens[0]) != 0:
        raise ValueError(f"cu_seqlens must be 1-D and start at 0, got {cu_seqlens.tolist()}")
    lengths = cu_seqlens.diff()
    if bool((lengths < 0).any()):
        raise ValueError(f"cu_seqlens must be non-decreasing, got {cu_seqlens.tolist()}")
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=cu_seqlens.device), lengths)


def block_diagonal_mask(q_ids: Tensor, k_ids: Tensor) -> Tensor:
    """Packed tokens attend only within their own sample.

    Args:
        q_ids: long [Nq] sample index per query (see :func:`sequence_ids`).
        k_ids: long [Nk] sample index per key.

    Returns:
        bool [Nq, Nk].
    """
    return q_ids[:, None] == k_ids[None, :]


def pack(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Padded [B, L, ...] + mask [B, L] -> flat [N, ...] + cu_seqlens [B + 1].

    Valid tokens must come first in each row (right padding).
    """
    lengths = mask.sum(1)  # [B]
    expected = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(mask.bool(), expected):
        raise ValueError("pack expects right-padded rows (all valid tokens before any padding)")
    cu = F.pad(lengths.cumsum(0), (1, 0))  # [B + 1]
    return x[mask.bool()], cu


def unpack(flat: Tensor, cu_seqlens: Tensor, *, max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Flat [N, ...] + cu_seqlens [B + 1] -> right-padded [B, L, ...] (zeros) + mask [B, L]."""
    lengths = cu_seqlens.diff()  # [B]
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    elif lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(f"a sample has {int(lengths.max())} tokens, more than max_len={max_len}")
    mask = torch.arange(max_len, device=flat.device)[None, :] < lengths[:, None]  # [B, L]
    out = flat.new_zeros((lengths.numel(), max_len, *flat.shape[1:]))  # [B, L, ...]
    out[mask] = flat
    return out, mask


def combine_masks(key_mask: Tensor | None, attn_mask: Tensor | None) -> Tensor | None:
    """Merge a key padding mask [B, Lk] and an attention mask [Lq, Lk] / [B, Lq, Lk].

    Returns:
        bool [B or 1, 1, Lq or 1, Lk] ready for SDPA's head axis, or None when both are None.
    """
    mask = None
    if key_mask is not None:
        if key_mask.dtype != torch.bool:
            raise TypeError(f"key_mask must be bool (True = real token), got {key_mask.dtype}")
        mask = key_mask[:, None, None, :]  # [B, 1, 1, Lk]
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise TypeError(f"attn_mask must be bool (True = may attend), got {attn_mask.dtype}")
        extra = attn_mask[None, None] if attn_mask.ndim == 2 else attn_mask[:, None]  # [B|1, 1, Lq, Lk]
        mask = extra if mask is None else mask & extra
    return mask


def _split_heads(x: Tensor, heads: int) -> Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # [B, L, H*Dh] -> [B, H, L, Dh]


# ---------------------------------------------------------------------------- attention


class _GatherRotate(torch.autograd.Function):
    """Each sample's keys and values ``rows[index]``, heads first, rotated by ``table``.

    Forward gathers every sample's keys and values straight into head-major tensors
    [H, L_b, Dh] (one row gather per head, so a head's keys are contiguous, as the fused SDPA
    kernel wants them) and rotates only their rotated pairs in place. Backward un-rotates each
    sample's gradients and scatter-adds them into the rows, one head at a time. Gather,
    rotate, split and transpose through autograd would copy the per-key tensor (POYO: ~30k
    spikes x 2H x Dh floats) several more times in each direction. Working per sample keeps
    every buffer small (~0.5 MB): buffers of tens of MB are returned to the OS when freed and
    page-faulted in again at every step, which cost more than the copies themselves.

    Args (forward): rows [R, 2H, Dh] (the keys' heads, then the values'); index long [N];
    table [N, P, 2] (no grad), P <= Dh/2; rotate_values: rotate the values too (else the keys
    only); lengths: keys per sample (summing to N). Returns B keys, then B values, each
    [H, L_b, Dh].
    """

    @staticmethod
    def applies(rows: Tensor, index: Tensor, table: Tensor) -> bool:
        """Whether the fused path fits: float rows, a no-grad table with one row per key."""
        fits = table.shape[:-2] == index.shape
        return fits and rows.dtype in (torch.float32, torch.float64) and not table.requires_grad

    @staticmethod
    def forward(ctx, rows: Tensor, index: Tensor, table: Tensor, rotate_values: bool, lengths: list[int]):
        table = table.to(rows.dtype).contiguous()
        by_head = rows.transpose(0, 1).contiguous()  # [2H, R, Dh], small
        keys, values = [], []
        for index_b, table_b in zip(index.split(lengths), table.split(lengths)):
            k, v = _gather_rotated(by_head, index_b, table_b, rotate_values)
            keys.append(k)
            values.append(v)
        ctx.save_for_backward(index, table)
        ctx.meta = (rows.shape, rotate_values, lengths)
        return (*keys, *values)

    @staticmethod
    def backward(ctx, *grads: Tensor | None):
        index, table = ctx.saved_tensors
        shape, rotate_values, lengths = ctx.meta
        heads = shape[1] // 2
        grad_rows = table.new_zeros(shape[1], shape[0], shape[2])  # [2H, R, Dh]
        pieces = zip(grads, [*index.split(lengths)] * 2, [*table.split(lengths)] * 2)
        for i, (grad, index_b, table_b) in enumerate(pieces):
            half = i // len(lengths)
            if grad is None or index_b.numel() == 0:
                continue
            rotate = half == 0 or rotate_values
            if rotate:
                grad = grad.clone(memory_format=torch.contiguous_format)  # [H, L_b, Dh], un-rotated in place
            _scatter_unrotated(grad_rows[half * heads : (half + 1) * heads], grad, index_b, table_b, rotate=rotate)
        return grad_rows.transpose(0, 1), None, None, None, None


_FLASH_CPU = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # -> out [B, H, M, Dh], logsumexp [B, H, M]
_FLASH_CPU_BACKWARD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


class _PackedRotaryAttention(torch.autograd.Function):
    """Queries against each sample's packed keys, gathered from distinct rows and rotated, one sample at a time.

    For sample ``b``: keys and values are ``rows[index_b]`` (heads first), rotated by ``table_b``
    (the values too with ``rotate_values``), and ``q[b]`` attends to them in the fused CPU flash
    kernel. Nothing per key is kept for backward, which gathers and rotates the sample's keys
    again, runs the kernel's backward, un-rotates the key and value gradients and scatter-adds
    them into the rows. A sample's keys and values (~1 MB for POYO at 2,000 spikes) are still in
    cache when its attention runs; gathering every sample's first (:class:`_GatherRotate`, the
    path for other devices and for attention dropout) evicts them, and the saved keys cost ~30 MB
    per step. POYO at ``benchmarks/vs_torch_brain.py``'s size, alternating A/B steps, one thread: inference
    0.88-0.93x, training step 0.94-0.99x (two threads: 0.96x) (issue 20). The same kernel on the same keys, so the
    same numbers as that path.

    Args (forward): q [B, H, M, Dh] (rotated queries); rows [R, 2H, Dh] (the keys' heads, then the
    values'); index long [N]; table [N, P, 2] (no grad); rotate_values; lengths: keys per sample
    (summing to N). Returns [B, H, M, Dh]; a sample without keys gets zeros.
    """

    @staticmethod
    def applies(q: Tensor, rows: Tensor, dropout: float) -> bool:
        """The fused CPU kernel serves float / double on the CPU without attention dropout."""
        floats = rows.dtype == q.dtype and q.dtype in (torch.float32, torch.float64)
        return q.device.type == "cpu" and floats and not dropout

    @staticmethod
    def forward(ctx, q: Tensor, rows: Tensor, index: Tensor, table: Tensor, rotate_values: bool, lengths: list[int]):
        table = table.to(rows.dtype).contiguous()
        by_head = rows.transpose(0, 1).contiguous()  # [2H, R, Dh], small
        out, logsumexp = torch.zeros_like(q), q.new_zeros(q.shape[:3])  # [B, H, M, Dh], [B, H, M]
        for b, (index_b, table_b) in enumerate(zip(index.split(lengths), table.split(lengths))):
            if index_b.numel():
                k, v = _gather_rotated(by_head, index_b, table_b, rotate_values)
                out_b, logsumexp_b = _FLASH_CPU(q[b, None], k[None], v[None])
                out[b], logsumexp[b] = out_b[0], logsumexp_b[0]
        ctx.save_for_backward(q, by_head, index, table, out, logsumexp)
        ctx.meta = (rows.shape, rotate_values, lengths)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        q, by_head, index, table, out, logsumexp = ctx.saved_tensors
        shape, rotate_values, lengths = ctx.meta
        heads = shape[1] // 2
        grad, grad_q, grad_rows = grad.contiguous(), torch.zeros_like(q), torch.zeros_like(by_head)  # [2H, R, Dh]
        for b, (index_b, table_b) in enumerate(zip(index.split(lengths), table.split(lengths))):
            if not index_b.numel():
                continue
            k, v = _gather_rotated(by_head, index_b, table_b, rotate_values)
            grad_q_b, grad_k, grad_v = _FLASH_CPU_BACKWARD(
                grad[b, None], q[b, None], k[None], v[None], out[b, None], logsumexp[b, None], 0.0, False
            )
            grad_q[b] = grad_q_b[0]
            _scatter_unrotated(grad_rows[:heads], grad_k[0].contiguous(), index_b, table_b, rotate=True)
            _scatter_unrotated(grad_rows[heads:], grad_v[0].contiguous(), index_b, table_b, rotate=rotate_values)
        return grad_q, grad_rows.transpose(0, 1), None, None, None, None


def _gather_rotated(by_head: Tensor, index: Tensor, table: Tensor, rotate_values: bool) -> tuple[Tensor, Tensor]:
    """Keys and values ``by_head[:, index]`` (``by_head`` [2H, R, Dh]: the keys' heads, then the values'), one row
    gather per head, rotated in place by ``table`` [L, P, 2] (the values too with ``rotate_values``): [H, L, Dh]
    each."""
    heads = by_head.shape[0] // 2
    keys, values = (by_head.new_empty(heads, index.numel(), by_head.shape[2]) for _ in range(2))
    for head in range(heads):
        torch.index_select(by_head[head], 0, index, out=keys[head])
        torch.index_select(by_head[heads + head], 0, index, out=values[head])
    _rotate_heads_(keys, table)
    if rotate_values:
        _rotate_heads_(values, table)
    return keys, values


def _scatter_unrotated(grad_rows: Tensor, grad: Tensor, index: Tensor, table: Tensor, *, rotate: bool) -> None:
    """Add ``grad`` [H, L, Dh] (contiguous; un-rotated in place by ``table`` when ``rotate``) into ``grad_rows``
    [H, R, Dh] at rows ``index`` [L]."""
    if rotate:
        _rotate_heads_(grad, table, inverse=True)
    for head in range(grad.shape[0]):
        grad_rows[head].index_add_(0, index, grad[head])


def _rotate_heads_(buffer: Tensor, table: Tensor, *, inverse: bool = False) -> None:
    """Rotate (or un-rotate) ``buffer`` [H, N, Dh] (contiguous) in place by ``table`` [N, P, 2], on
    each head's first P pairs only."""
    pairs = table.shape[-2]
    head = torch.view_as_complex(buffer[..., : 2 * pairs].unflatten(-1, (pairs, 2)))  # [H, N, P]
    turn = torch.view_as_complex(table)  # [N, P]
    head.mul_(turn.conj() if inverse else turn)


class Attention(nn.Module):
    """Multi-head self- or cross-attention with optional rotary time and QK-norm.

    Normalisation of the inputs is the caller's (pre-norm blocks); this module is
    projections + SDPA + output projection.

    Args:
        dim: query width D.
        heads: H.
        head_dim: Dh; default ``dim // heads`` (must divide).
        context_dim: key/value source width for cross-attention; default ``dim``.
        bias: biases on the q/k/v/out projections (NDT3: off).
        qk_norm: RMS-normalise queries and keys per head before the dot product (NDT3).
        rotate_value: POYO's trick: rotate values by the key times and inverse-rotate the
            output by the query times, so the output carries relative time too.
        dropout: attention-probability dropout (training only).

    Shapes:
        forward(x [B, Lq, D], context [B, Lk, Dc] | None, key_mask [B, Lk], attn_mask
        [Lq, Lk] | [B, Lq, Lk], rotary [B, Lq, P, 2], context_rotary [B, Lk, P, 2])
        -> [B, Lq, D]. Rotary tables (P <= Dh/2 rotated pairs) come from
        :class:`~spikefm.nn.RotaryTimeEmbedding`; ``context_rotary`` defaults to ``rotary``
        in self-attention.

    Two options cut the work that scales with the number of keys (POYO's spike tokens):

    * ``context_index`` [B, Lk] (or [N]): ``context`` is a table [R, Dc] of distinct rows
      and key ``j`` is row ``context_index[j]``. The key/value projection runs once per row
      and is gathered per key (POYO: a spike token is its unit's row + its token type's row,
      so a batch of ~30k spikes has a few hundred distinct rows).
    * ``context_cu_seqlens`` [B + 1]: the keys are packed [N] (``context`` [N, Dc] or
      ``context_index`` [N], ``context_rotary`` [N, P, 2]) while the queries stay [B, Lq, D].
      Projections, rotations and attention run on the N real keys only: one SDPA call per
      sample on its slice of the packed keys (no padded key is ever computed).
    """

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        head_dim: int | None = None,
        context_dim: int | None = None,
        bias: bool = True,
        qk_norm: bool = False,
        rotate_value: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if head_dim is None:
            if dim % heads:
                raise ValueError(f"dim {dim} is not divisible by heads {heads}; pass head_dim explicitly")
            head_dim = dim // heads
        inner = heads * head_dim
        self.dim, self.heads, self.head_dim = dim, heads, head_dim
        self.rotate_value = rotate_value
        self.dropout = dropout
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_kv = nn.Linear(context_dim or dim, 2 * inner, bias=bias)
        self.to_out = nn.Linear(inner, dim, bias=bias)
        self.q_norm = RMSNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(head_dim) if qk_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        rotary: Tensor | None = None,
        context_rotary: Tensor | None = None,
        context_index: Tensor | None = None,
        context_cu_seqlens: Tensor | None = None,
    ) -> Tensor:
        self_attention = context is None
        context = x if context is None else context
        context_rotary = rotary if self_attention and context_rotary is None else context_rotary
        if (rotary is None) != (context_rotary is None):
            raise ValueError("cross-attention with rotary needs both rotary (queries) and context_rotary (keys)")
        q = self.q_norm(self.to_q(x).unflatten(-1, (self.heads, -1)))  # [B, Lq, H, Dh]
        lengths = None
        if context_cu_seqlens is not None:
            if key_mask is not None or attn_mask is not None:
                raise ValueError("packed keys (context_cu_seqlens) carry their own extents; drop key_mask / attn_mask")
            lengths = context_cu_seqlens.diff().tolist()
            n_keys = (context if context_index is None else context_index).shape[0]
            if len(lengths) != q.shape[0] or sum(lengths) != n_keys:
                raise ValueError(f"context_cu_seqlens {context_cu_seqlens.tolist()} does not match {q.shape[0]} "
                                 f"samples and {n_keys} packed keys")
        if rotary is not None:
            q = apply_rotary(q, rotary.unsqueeze(-3))  # table [B, Lq, 1, P, 2]
        q = q.transpose(1, 2)  # [B, H, Lq, Dh]
        out = self._packed_rotary_attention(q, context, context_index, context_rotary, lengths)
        if out is None:
            k, v = self._keys_values(context, context_index, context_rotary, lengths)
            if lengths is not None:
                out = self._attend_packed(q, k, v)  # [B, H, Lq, Dh]
            else:
                out = self._attend(q, k, v, combine_masks(key_mask, attn_mask))  # [B, H, Lq, Dh]
        out = out.transpose(1, 2)  # [B, Lq, H, Dh]
        if rotary is not None and self.rotate_value:
            out = apply_rotary(out, invert_rotary(rotary).unsqueeze(-3))
        return self.to_out(out.flatten(2))  # [B, Lq, H*Dh] -> [B, Lq, D]

    def _packed_rotary_attention(
        self, q: Tensor, context: Tensor, index: Tensor | None, rotary: Tensor | None, lengths: list[int] | None
    ) -> Tensor | None:
        """:class:`_PackedRotaryAttention` of ``q`` [B, H, Lq, Dh] on packed, indexed, rotated keys where it applies
        (the CPU, no attention dropout, no key norm): [B, H, Lq, Dh]; otherwise None."""
        if lengths is None or index is None or rotary is None or index.numel() == 0:
            return None
        dropout = self.dropout if self.training else 0.0
        plain_keys = isinstance(self.k_norm, nn.Identity)
        if not (plain_keys and _GatherRotate.applies(context, index, rotary)
                and _PackedRotaryAttention.applies(q, context, dropout)):  # fmt: skip
            return None
        rows = self.to_kv(context).unflatten(-1, (2 * self.heads, self.head_dim))  # [R, 2H, Dh]
        return _PackedRotaryAttention.apply(q, rows, index, rotary, self.rotate_value, lengths)

    def _keys_values(
        self, context: Tensor, index: Tensor | None, rotary: Tensor | None, lengths: list[int] | None
    ) -> tuple[Tensor, Tensor] | tuple[Sequence[Tensor], Sequence[Tensor]]:
        """Projected (and rotated) keys and values, heads first: [B, H, Lk, Dh] each, or for
        packed keys (``lengths`` given) one [H, L_b, Dh] per sample."""
        kv = self.to_kv(context)  # [..., 2 * H * Dh]
        plain_keys = isinstance(self.k_norm, nn.Identity)
        fused = index is not None and rotary is not None and plain_keys and index.numel() > 0
        if fused and _GatherRotate.applies(kv, index, rotary):
            return self._gather_rotate(kv, index, rotary, lengths)
        table = None if rotary is None else rotary.unsqueeze(-3)  # [..., Lk, 1, P, 2]
        if index is not None:
            kv = F.embedding(index, kv)  # one projection per distinct row, gathered per key
        kv = kv.unflatten(-1, (2 * self.heads, self.head_dim))  # [..., Lk, 2H, Dh]
        if table is not None and self.rotate_value and plain_keys:
            k, v = apply_rotary(kv, table).split(self.heads, dim=-2)  # keys and values share their times
        else:
            k, v = kv.split(self.heads, dim=-2)
            k = self.k_norm(k)
            if table is not None:
                k = apply_rotary(k, table)
                v = apply_rotary(v, table) if self.rotate_value else v
        if lengths is None:
            return k.transpose(1, 2), v.transpose(1, 2)  # [B, H, Lk, Dh]
        return [k_b.transpose(0, 1) for k_b in k.split(lengths)], [v_b.transpose(0, 1) for v_b in v.split(lengths)]

    def _gather_rotate(
        self, kv: Tensor, index: Tensor, rotary: Tensor, lengths: list[int] | None
    ) -> tuple[Tensor, Tensor] | tuple[Sequence[Tensor], Sequence[Tensor]]:
        """:class:`_GatherRotate` on rows ``kv`` [R, 2H * Dh] for keys ``index`` [B, Lk] or packed [N]."""
        rows = kv.unflatten(-1, (2 * self.heads, self.head_dim))  # [R, 2H, Dh]
        per_sample = lengths if lengths is not None else [index.shape[-1]] * (index.numel() // index.shape[-1])
        pieces = _GatherRotate.apply(
            rows, index.reshape(-1), rotary.reshape(-1, *rotary.shape[-2:]), self.rotate_value, per_sample
        )  # B keys then B values, [H, L_b, Dh] each
        keys, values = pieces[: len(per_sample)], pieces[len(per_sample) :]
        if lengths is not None:
            return keys, values
        shape = (*index.shape[:-1], self.heads, index.shape[-1], self.head_dim)  # [B, H, Lk, Dh]
        return torch.stack(keys).view(shape), torch.stack(values).view(shape)

    def _attend_packed(self, q: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor]) -> Tensor:
        """q [B, H, Lq, Dh] against each sample's own keys / values [H, L_b, Dh]: one SDPA call per
        sample, so no padded key is projected, rotated or attended to (a sample without keys gets
        zeros). 4-D inputs take the fused CPU kernel (3-D ones fall back to the math path)."""
        dropout = self.dropout if self.training else 0.0
        outs = []
        for q_b, k_b, v_b in zip(q.unbind(0), keys, values):
            if k_b.shape[1] == 0:
                outs.append(torch.zeros_like(q_b))
                continue
            outs.append(F.scaled_dot_product_attention(q_b[None], k_b[None], v_b[None], dropout_p=dropout)[0])
        return torch.stack(outs)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        dropout = self.dropout if self.training else 0.0
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        # Rows with no visible key would give NaN; let them see everything, then zero them.
        has_key = mask.any(-1, keepdim=True)  # [B|1, 1, Lq|1, 1]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~has_key, dropout_p=dropout)
        return out * has_key.to(out.dtype)


class AttentionWeights(nn.Module):
    """Head-averaged attention probabilities ``softmax(q k^T / sqrt(Dh))`` (no values).

    STNDT's spatial attention uses only this N x N matrix (``nn.MultiheadAttention``'s
    ``need_weights=True, average_attn_weights=True`` output) to mix neurons.

    Args:
        dim: token width D.
        heads: H.
        head_dim: Dh; default ``dim // heads``.
        bias: biases on the q/k projections.

    Shapes:
        forward(x [B, L, D], key_mask [B, L] | None) -> [B, L, L], rows sum to 1.
    """

    def __init__(self, *, dim: int, heads: int, head_dim: int | None = None, bias: bool = True) -> None:
        super().__init__()
        if head_dim is None:
            if dim % heads:
                raise ValueError(f"dim {dim} is not divisible by heads {heads}; pass head_dim explicitly")
            head_dim = dim // heads
        self.heads, self.head_dim = heads, head_dim
        self.to_qk = nn.Linear(dim, 2 * heads * head_dim, bias=bias)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        q, k = (_split_heads(t, self.heads) for t in self.to_qk(x).chunk(2, dim=-1))  # [B, H, L, Dh]
        scores = q @ k.transpose(-1, -2) / self.head_dim**0.5  # [B, H, L, L]
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return scores.softmax(-1).nan_to_num(0.0).mean(1)  # [B, L, L]
