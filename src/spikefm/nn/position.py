"""Position and time embeddings: sinusoidal, learned, and rotary on continuous time.

Three ways to tell a token where it sits:

* :class:`SinusoidalEmbedding` - fixed sin/cos features added to tokens (NDT1's
  ``PositionalEncoding``; with ``periods`` in seconds it embeds continuous time).
* :class:`LearnedPositionEmbedding` / :class:`LearnedTimeEmbedding` - a learned row per
  integer position (NDT1, NDT2, MtM) or per time bin of continuous timestamps
  (Neuroformer's dt tokens).
* :class:`RotaryTimeEmbedding` - rotations applied to queries and keys from **real
  timestamps in seconds** (POYO), so attention depends only on time differences.

Shape legend: ``...`` any leading batch shape, ``L`` tokens, ``H`` heads, ``Dh`` head dim,
``D`` model dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "logspace_periods",
    "SinusoidalEmbedding",
    "LearnedPositionEmbedding",
    "LearnedTimeEmbedding",
    "RotaryTimeEmbedding",
    "apply_rotary",
    "invert_rotary",
]


def logspace_periods(num: int, *, t_min: float, t_max: float, endpoint: bool = True) -> Tensor:
    """Periods log-spaced from ``t_min`` to ``t_max`` (float64).

    Args:
        num: how many periods.
        t_min: the shortest period (first entry), > 0.
        t_max: the longest period, > ``t_min``.
        endpoint: include ``t_max`` as the last entry (``True``), or stop one log-step short of
            it as POYO does (``False``: ``t_min * (t_max / t_min) ** (k / num)``, k = 0..num-1).

    Returns:
        float64 tensor [num].
    """
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    denom = max(num - 1, 1) if endpoint else num
    steps = torch.arange(num, dtype=torch.float64) / denom
    return t_min * (t_max / t_min) ** steps


def _angle_dtype(device: torch.device) -> torch.dtype:
    # Angles omega * t reach ~1e5 rad for POYO's 0.1 ms period; float32 would lose ~1e-2 rad
    # in the product itself, so angles are formed in float64 wherever the device has it.
    return torch.float32 if device.type == "mps" else torch.float64


class SinusoidalEmbedding(nn.Module):
    """Fixed sinusoidal features of positions or times (NDT1's positional encoding).

    Column ``2i`` is ``sin(2 pi x / period_i)`` and column ``2i + 1`` is ``cos(...)``, as in
    NDT1 / "Attention is all you need"; an odd ``dim`` drops the last cosine.

    Args:
        dim: output width D (any positive integer).
        periods: float tensor [ceil(D / 2)] of periods in the units of the input (steps or
            seconds). Default: NDT1's ``2 pi * 10000 ** (2i / D)`` for integer positions; for
            continuous time pass e.g. ``logspace_periods(D // 2, t_min=1e-3, t_max=4.0)``.

    Shapes:
        forward(positions [...]) -> [..., D] in float32 (float64 if the input is float64).
    """

    def __init__(self, *, dim: int, periods: Tensor | None = None) -> None:
        super().__init__()
        half = (dim + 1) // 2
        if periods is None:
            periods = 2 * math.pi * 10000.0 ** (torch.arange(half, dtype=torch.float64) * 2 / dim)
        periods = torch.as_tensor(periods, dtype=torch.float64)
        if periods.shape != (half,):
            raise ValueError(
                f"periods must have shape [{half}] (= ceil(dim / 2)) for dim={dim}, got {tuple(periods.shape)}"
            )
        self.dim = dim
        # Python floats, not a buffer: model.half() must not round the frequencies.
        self.periods = tuple(periods.tolist())

    def forward(self, positions: Tensor) -> Tensor:
        out_dtype = torch.float64 if positions.dtype == torch.float64 else torch.float32
        work = _angle_dtype(positions.device)
        omega = 2 * math.pi / torch.tensor(self.periods, dtype=work, device=positions.device)  # [ceil(D/2)]
        angles = positions.to(work)[..., None] * omega  # [..., ceil(D/2)]
        out = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # [..., 2 * ceil(D/2)]
        return out[..., : self.dim].to(out_dtype)


class LearnedPositionEmbedding(nn.Module):
    """One learned vector per integer position (NDT1 ``learnable_position``, NDT2, MtM).

    Args:
        num_positions: table size; positions must lie in ``[0, num_positions)``.
        dim: embedding width D.

    Shapes:
        forward(positions [...] long) -> [..., D].
    """

    def __init__(self, *, num_positions: int, dim: int) -> None:
        super().__init__()
        self.num_positions = num_positions
        self.embedding = nn.Embedding(num_positions, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, positions: Tensor) -> Tensor:
        if positions.dtype.is_floating_point:
            raise TypeError("positions must be integers; for continuous times use LearnedTimeEmbedding")
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= self.num_positions):
            raise IndexError(
                f"position out of range [0, {self.num_positions}): got min {int(positions.min())}, "
                f"max {int(positions.max())}; build the embedding with a larger num_positions"
            )
        return self.embedding(positions)


class LearnedTimeEmbedding(nn.Module):
    """A learned vector per time bin of continuous timestamps (Neuroformer's dt embedding).

    Bin index = ``floor(t / resolution)``, with a 1e-6 bin tolerance so times that lie on the
    grid (0.03 s at 0.01 s) land in their own bin despite float rounding.

    Args:
        dim: embedding width D.
        resolution: bin width in seconds (Neuroformer: 0.01).
        max_time: times must lie in ``[0, max_time)`` seconds (window-relative).

    Shapes:
        forward(times [...] float seconds) -> [..., D].
    """

    def __init__(self, *, dim: int, resolution: float, max_time: float) -> None:
        super().__init__()
        if resolution <= 0 or max_time <= 0:
            raise ValueError(f"resolution and max_time must be > 0, got {resolution}, {max_time}")
        self.resolution = resolution
        self.table = LearnedPositionEmbedding(num_positions=math.ceil(max_time / resolution - 1e-6), dim=dim)

    def forward(self, times: Tensor) -> Tensor:
        index = torch.floor(times.double() / self.resolution + 1e-6).long()  # [...]
        return self.table(index)


def apply_rotary(x: Tensor, table: Tensor) -> Tensor:
    """Rotate consecutive pairs of ``x``'s last dim by the angles in ``table``.

    The table may cover fewer pairs than ``x`` has (POYO rotates half of each head): the first
    ``2 * P`` entries of ``x`` rotate and the rest pass through unchanged, with no work spent
    on them.

    Args:
        x: [..., Dh] queries, keys or values.
        table: [..., P, 2] (cos, sin), ``P <= Dh // 2``, from :class:`RotaryTimeEmbedding`;
            broadcastable against ``x`` viewed as [..., Dh // 2, 2] over its first P pairs.

    Returns:
        [..., Dh], same dtype as ``x``.
    """
    pairs = table.shape[-2]
    if 2 * pairs > x.shape[-1]:
        raise ValueError(f"rotary table has {pairs} pairs, more than x's last dim {x.shape[-1]} holds")
    if 2 * pairs == x.shape[-1]:
        return _rotate_pairs(x, table.to(x.dtype))
    # split (not slicing) so the backward is one concatenation, not a zero-filled copy per slice
    head, rest = x.split((2 * pairs, x.shape[-1] - 2 * pairs), dim=-1)
    return torch.cat((_rotate_pairs(head, table.to(x.dtype)), rest), dim=-1)  # [..., Dh]


def _rotate_pairs(x: Tensor, table: Tensor) -> Tensor:
    # One complex multiply (x0 + i x1)(cos + i sin) instead of four real products and a stack.
    pairs = x.unflatten(-1, (-1, 2))  # [..., P, 2]
    if x.dtype in (torch.float32, torch.float64) and _complex_view_ok(pairs) and _complex_view_ok(table):
        z = torch.view_as_complex(pairs) * torch.view_as_complex(table)  # [..., P]
        return torch.view_as_real(z).flatten(-2)
    cos, sin = table[..., 0], table[..., 1]
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def _complex_view_ok(t: Tensor) -> bool:
    """Whether ``torch.view_as_complex`` accepts ``t`` [..., 2] without a copy."""
    return t.stride(-1) == 1 and t.storage_offset() % 2 == 0 and all(s % 2 == 0 for s in t.stride()[:-1])


def invert_rotary(table: Tensor) -> Tensor:
    """The table for time ``-t`` given the table for ``t`` (negates the sines)."""
    return torch.stack((table[..., 0], -table[..., 1]), dim=-1)


class RotaryTimeEmbedding(nn.Module):
    """Rotary embedding from continuous timestamps in seconds (POYO).

    The first ``rotate_dim`` entries of each head (``rotate_dim / 2`` pairs) rotate with
    angular frequency ``2 pi / period_k``; the remaining pairs are left as they are. Periods
    are log-spaced from ``t_min`` towards ``t_max`` (``endpoint=False``, POYO's choice). The
    defaults are POYO's: half of a 64-dim head rotated, 16 periods from 1e-4 s to
    ``1e-4 * (4 / 1e-4) ** (15 / 16) = 2.066`` s.

    Attention scores between a query at ``t_q`` and a key at ``t_k`` depend only on
    ``t_q - t_k``, so shifting every timestamp leaves attention unchanged. Angles are formed
    in float64 (float32 on MPS) and reduced modulo 2 pi before float32 trig, so float32
    window-relative times are exact up to their own rounding (sub-microsecond in a 1 s
    window); for absolute session times pass float64 timestamps.

    Trig runs on the ``rotate_dim / 2`` rotated pairs only; the table's other pairs are
    (1, 0), so :func:`apply_rotary` rotates a whole head with one complex multiply.

    Args:
        head_dim: Dh, even.
        rotate_dim: how many leading head dims rotate (even, <= Dh). Default ``Dh // 2`` rounded
            down to even.
        t_min: shortest period in seconds.
        t_max: longest period bound in seconds.
        endpoint: whether ``t_max`` itself is the last period.

    Shapes:
        forward(timestamps [...] seconds) -> table [..., Dh // 2, 2] of (cos, sin), float32
        (float64 for float64 input). Apply with :func:`apply_rotary`.
    """

    def __init__(
        self,
        *,
        head_dim: int,
        rotate_dim: int | None = None,
        t_min: float = 1e-4,
        t_max: float = 4.0,
        endpoint: bool = False,
    ) -> None:
        super().__init__()
        rotate_dim = (head_dim // 2) // 2 * 2 if rotate_dim is None else rotate_dim
        if head_dim % 2 or rotate_dim % 2 or not 0 < rotate_dim <= head_dim:
            raise ValueError(f"need even head_dim and even 0 < rotate_dim <= head_dim, got {head_dim}, {rotate_dim}")
        periods = logspace_periods(rotate_dim // 2, t_min=t_min, t_max=t_max, endpoint=endpoint)
        omega = torch.zeros(head_dim // 2, dtype=torch.float64)
        omega[: rotate_dim // 2] = 2 * math.pi / periods
        self.head_dim = head_dim
        self.rotate_dim = rotate_dim
        # Python floats, not a buffer: model.half() must not round the frequencies.
        self.omega = tuple(omega.tolist())

    @property
    def periods(self) -> Tensor:
        """Periods in seconds of the rotated pairs, [rotate_dim // 2] float64."""
        return 2 * math.pi / torch.tensor(self.omega[: self.rotate_dim // 2], dtype=torch.float64)

    def forward(self, timestamps: Tensor, *, compact: bool = False) -> Tensor:
        """The (cos, sin) table [..., Dh // 2, 2], or only its rotated pairs [..., rotate_dim // 2, 2]
        with ``compact=True`` (:func:`apply_rotary` takes either)."""
        if not timestamps.dtype.is_floating_point:
            raise TypeError("timestamps must be float seconds (got integers); convert bins to seconds first")
        out_dtype = torch.float64 if timestamps.dtype == torch.float64 else torch.float32
        work = _angle_dtype(timestamps.device)
        pairs = self.rotate_dim // 2
        omega = torch.tensor(self.omega[:pairs], dtype=work, device=timestamps.device)  # [P]
        if out_dtype != work:
            # Turns t / period in float64, their fractional part (exact), then 2 pi x it and the trig in
            # float32: within ~6e-7 rad of float64 trig at half its cost. ``frac`` is a single
            # pass; ``remainder(angle, 2 pi)`` divides and was ~40% of the table's time.
            turns = timestamps.to(work)[..., None] * (omega / (2 * math.pi))  # [..., P]
            angles = torch.frac(turns).to(out_dtype).mul_(2 * math.pi)  # (-2 pi, 2 pi)
        else:
            angles = timestamps.to(work)[..., None] * omega  # [..., P], up to ~1e5 rad
        # cos and sin written straight into their interleaved slots (a stack would be one more
        # pass and one more table-sized buffer: POYO builds this for every spike, ~30k x P).
        if angles.requires_grad:  # out= does not differentiate; times rarely carry gradients
            table = torch.stack((angles.cos(), angles.sin()), dim=-1)  # [..., P, 2]
        else:
            table = angles.new_empty(*angles.shape, 2)  # [..., P, 2]
            torch.cos(angles, out=table[..., 0])
            torch.sin(angles, out=table[..., 1])
        if compact or pairs == self.head_dim // 2:
            return table
        # Unrotated pairs get (cos, sin) = (1, 0): one complex multiply then rotates the whole
        # head, cheaper than splitting each head and concatenating it back (forward and backward).
        still = table.new_tensor([1.0, 0.0]).expand(*table.shape[:-2], self.head_dim // 2 - pairs, 2)
        return torch.cat((table, still), dim=-2)  # [..., Dh/2, 2]
