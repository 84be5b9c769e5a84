"""Masking schemes as data transforms on batched binned counts.

Every scheme takes counts ``x`` of shape ``[B, T, N]`` (batch, time bins, neurons)
and returns a :class:`MaskResult`: the corrupted input the model sees and a bool
``mask`` ``[B, T, N]`` marking the entries the loss scores (``True`` = hidden from
the model and to be predicted). Pass the mask to a loss, e.g.
``poisson_nll(log_rates, x, result.mask)``.

Selection sizes are exact, not Bernoulli: a scheme with ratio ``r`` over ``m``
eligible items (time steps, neurons, region members) selects
``n = floor(r * m + 0.5)`` of them, raised to 1 when ``r > 0`` and ``m > 0`` (a
masked batch that scores nothing wastes a step). Padding never gets selected:
``valid`` (``[B, T, N]`` or per-neuron ``[B, N]``) and region id ``-1`` mark it.
Every random draw comes from ``generator`` (drawn on the generator's device, CPU
by default), so a seed fixes the result.

Of the selected entries, a fraction ``zero_ratio`` is set to 0, a fraction
``random_ratio`` is replaced by a random count drawn uniformly from the batch's
valid count range ``[min, max]``, and the rest keep their value (BERT / NDT1's
80/10/10). NDT1 token masking defaults to 0.8 / 0.1; the MtM schemes default to
1.0 / 0.0 (everything selected is zeroed).

Schemes (paper defaults):

- :func:`random_token_mask` — NDT1: whole time steps, ratio 0.25, optional spans.
- :func:`causal_mask` — MtM causal: whole time steps, ratio 0.6; the model must
  run with causal attention (MtM sets ``context_forward = 0``).
- :func:`forward_mask` — NLB forward prediction: the last ``n_forward`` bins.
- :func:`neuron_mask` — MtM neuron: whole neurons, ratio 0.3.
- :func:`intra_region_mask` — MtM intra-region: ratio 0.3 of one region's neurons.
- :func:`inter_region_mask` — MtM inter-region: one whole region.

MtM samples one of its four schemes per batch and prepends a prompt token
``Embedding(4, hidden)`` for it: :func:`sample_scheme`, :func:`apply_scheme` and
:attr:`MaskingScheme.prompt_id`.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.ones(2, 8, 5)
>>> res = neuron_mask(x, 0.4, generator=g)
>>> res.mask.sum(dim=(1, 2)).tolist()  # 2 of 5 neurons x 8 bins per sample
[16, 16]
>>> bool((res.masked_input[res.mask] == 0).all())
True
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "MaskResult",
    "MaskingScheme",
    "random_token_mask",
    "causal_mask",
    "forward_mask",
    "neuron_mask",
    "intra_region_mask",
    "inter_region_mask",
    "sample_scheme",
    "apply_scheme",
    "n_selected",
]


class MaskResult(NamedTuple):
    """Output of a masking scheme.

    Attributes:
        masked_input: ``[B, T, N]`` the corrupted counts the model sees (same dtype as ``x``).
        mask: ``[B, T, N]`` bool; ``True`` = hidden from the model and scored by the loss.
    """

    masked_input: Tensor
    mask: Tensor


class MaskingScheme(str, enum.Enum):
    """MtM's four masking schemes; ``prompt_id`` indexes the prompt embedding ``Embedding(4, hidden)``."""

    NEURON = "neuron"
    CAUSAL = "causal"
    INTER_REGION = "inter_region"
    INTRA_REGION = "intra_region"

    @property
    def prompt_id(self) -> int:
        """Integer id 0..3 in the order neuron, causal, inter-region, intra-region."""
        return _PROMPT_IDS[self]

    @property
    def default_ratio(self) -> float | None:
        """MtM's ratio for this scheme (``None`` for inter-region, which masks a whole region)."""
        return _DEFAULT_RATIOS[self]

    @property
    def needs_regions(self) -> bool:
        """Whether the scheme needs per-neuron region ids."""
        return self in (MaskingScheme.INTER_REGION, MaskingScheme.INTRA_REGION)


_PROMPT_IDS = {
    MaskingScheme.NEURON: 0,
    MaskingScheme.CAUSAL: 1,
    MaskingScheme.INTER_REGION: 2,
    MaskingScheme.INTRA_REGION: 3,
}
_DEFAULT_RATIOS: dict[MaskingScheme, float | None] = {
    MaskingScheme.NEURON: 0.3,
    MaskingScheme.CAUSAL: 0.6,
    MaskingScheme.INTER_REGION: None,
    MaskingScheme.INTRA_REGION: 0.3,
}


# --------------------------------------------------------------------------- checks


def _check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor [B, T, N], got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"x must be binned counts [B, T, N], got shape {tuple(x.shape)}")


def _check_ratio(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_replacement(zero_ratio: float, random_ratio: float) -> None:
    _check_ratio(zero_ratio, "zero_ratio")
    _check_ratio(random_ratio, "random_ratio")
    if zero_ratio + random_ratio > 1.0 + 1e-12:
        raise ValueError(f"zero_ratio + random_ratio must be <= 1, got {zero_ratio} + {random_ratio}")


def _regions_2d(regions: Tensor, x: Tensor) -> Tensor:
    """Region ids as ``[B, N]`` int64 on ``x``'s device; ``[N]`` is shared across the batch."""
    if not isinstance(regions, Tensor):
        raise TypeError(f"regions must be an int tensor [B, N] or [N], got {type(regions).__name__}")
    if regions.dtype.is_floating_point or regions.dtype == torch.bool or regions.is_complex():
        raise TypeError(f"regions must be an integer tensor of region ids (-1 = padding), got {regions.dtype}")
    b, _, n = x.shape
    if regions.ndim == 1:
        regions = regions.unsqueeze(0).expand(b, -1)
    if regions.shape != (b, n):
        raise ValueError(f"regions must be [B, N] = [{b}, {n}] or [N] = [{n}], got {tuple(regions.shape)}")
    if torch.any(regions < -1):
        raise ValueError("regions must be >= 0 (a region id) or -1 (padded neuron)")
    return regions.to(device=x.device, dtype=torch.int64)


def _valid_3d(x: Tensor, valid: Tensor | None, regions: Tensor | None = None) -> Tensor:
    """Entry validity ``[B, T, N]`` from ``valid`` (``[B, T, N]`` or ``[B, N]``) and ``regions != -1``."""
    b, t, n = x.shape
    if valid is None:
        out = torch.ones(b, t, n, dtype=torch.bool, device=x.device)
    else:
        if not isinstance(valid, Tensor) or valid.dtype != torch.bool:
            raise TypeError("valid must be a bool tensor [B, T, N] or [B, N] (True = real data); pass valid.bool()")
        valid = valid.to(x.device)
        if valid.shape == (b, t, n):
            out = valid
        elif valid.shape == (b, n):
            out = valid.unsqueeze(1).expand(b, t, n)
        else:
            raise ValueError(f"valid must be [B, T, N] = {(b, t, n)} or [B, N] = {(b, n)}, got {tuple(valid.shape)}")
    if regions is not None:
        out = out & (regions != -1).unsqueeze(1)
    return out


# --------------------------------------------------------------------------- random helpers


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=_draw_device(generator)).to(device)


def n_selected(ratio: float, eligible: Tensor) -> Tensor:
    """How many of ``eligible`` items a scheme with ``ratio`` selects.

    ``floor(ratio * m + 0.5)``, at least 1 when ``ratio > 0`` and ``m > 0``, at most ``m``.

    Args:
        ratio: fraction in ``[0, 1]``.
        eligible: ``[B]`` integer counts ``m`` of eligible items per sample.

    Returns:
        ``[B]`` int64 counts.
    """
    m = eligible.to(torch.float64)
    n = torch.floor(ratio * m + 0.5).to(torch.int64)
    if ratio > 0:
        n = torch.where(eligible > 0, n.clamp(min=1), n)
    return torch.minimum(n, eligible.to(torch.int64))


def _choose(eligible: Tensor, k: Tensor, generator: torch.Generator | None) -> Tensor:
    """Select exactly ``k[b]`` of the ``True`` items of ``eligible[b]``, uniformly at random.

    Args:
        eligible: ``[B, M]`` bool.
        k: ``[B]`` int64, ``k[b] <= eligible[b].sum()``.

    Returns:
        ``[B, M]`` bool selection.
    """
    b, m = eligible.shape
    scores = _rand((b, m), generator, eligible.device)
    scores = torch.where(eligible, scores, torch.full_like(scores, 2.0))  # ineligible items rank last
    order = scores.argsort(dim=-1)
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(m, device=order.device).expand(b, m))
    return (ranks < k.unsqueeze(1)) & eligible


def _choose_spans(time_valid: Tensor, k: Tensor, span: int, generator: torch.Generator | None) -> Tensor:
    """Select exactly ``k[b]`` valid time steps in contiguous runs of random length ``1..span``.

    The runs are placed uniformly among the valid steps (in order); neighbouring runs
    may touch.

    Args:
        time_valid: ``[B, T]`` bool.
        k: ``[B]`` int64.
        span: longest run.

    Returns:
        ``[B, T]`` bool selection.
    """
    draw = _draw_device(generator)
    chosen = torch.zeros_like(time_valid)
    for i in range(time_valid.shape[0]):
        n = int(k[i])
        if n == 0:
            continue
        steps = time_valid[i].nonzero().squeeze(1)  # [Tv] valid step indices
        lengths = torch.randint(1, span + 1, (n,), generator=generator, device=draw).cpu()
        n_runs = int(torch.searchsorted(lengths.cumsum(0), torch.tensor(n)).item()) + 1
        lengths = lengths[:n_runs].clone()
        lengths[-1] -= int(lengths.sum()) - n  # trim the last run so the total is exactly n
        n_free = steps.numel() - n
        # A uniform arrangement of n_runs runs among n_free single free steps.
        slots = torch.randperm(n_runs + n_free, generator=generator, device=draw).cpu()[:n_runs].sort().values
        is_run = torch.zeros(n_runs + n_free, dtype=torch.bool)
        is_run[slots] = True
        item_len = torch.ones(n_runs + n_free, dtype=torch.int64)
        item_len[slots] = lengths
        selected = torch.repeat_interleave(is_run, item_len)  # [Tv]
        chosen[i, steps[selected.to(steps.device)]] = True
    return chosen


def _corrupt(
    x: Tensor,
    hidden: Tensor,
    valid: Tensor,
    zero_ratio: float,
    random_ratio: float,
    generator: torch.Generator | None,
) -> Tensor:
    """Zero / randomise / keep the ``hidden`` entries of ``x``; everything else is unchanged."""
    u = _rand(tuple(x.shape), generator, x.device)
    r = _rand(tuple(x.shape), generator, x.device)
    out = x.clone()
    zero = hidden & (u < zero_ratio)
    randomise = hidden & (u >= zero_ratio) & (u < zero_ratio + random_ratio)
    out[zero] = 0
    if bool(randomise.any()):
        values = x[valid]
        lo, hi = values.min().double(), values.max().double()
        # Uniform integer offsets over [lo, hi]; the clamp catches r -> 1 rounding.
        draws = torch.clamp(lo + torch.floor(r.double() * (hi - lo + 1)), max=hi)
        out[randomise] = draws[randomise].to(x.dtype)
    return out


def _result(
    x: Tensor,
    mask: Tensor,
    valid: Tensor,
    zero_ratio: float,
    random_ratio: float,
    generator: torch.Generator | None,
    hidden: Tensor | None = None,
) -> MaskResult:
    mask = mask & valid
    hidden = mask if hidden is None else (hidden & valid) | mask
    return MaskResult(_corrupt(x, hidden, valid, zero_ratio, random_ratio, generator), mask)


# --------------------------------------------------------------------------- time-step schemes


def _time_step_mask(
    x: Tensor,
    ratio: float,
    span: int,
    valid: Tensor | None,
    generator: torch.Generator | None,
    zero_ratio: float,
    random_ratio: float,
) -> MaskResult:
    _check_x(x)
    _check_ratio(ratio, "ratio")
    _check_replacement(zero_ratio, random_ratio)
    if not isinstance(span, int) or span < 1:
        raise ValueError(f"span must be an int >= 1, got {span!r}")
    valid3 = _valid_3d(x, valid)
    time_valid = valid3.any(dim=-1)  # [B, T]
    k = n_selected(ratio, time_valid.sum(dim=-1))
    chosen = _choose(time_valid, k, generator) if span == 1 else _choose_spans(time_valid, k, span, generator)
    return _result(x, chosen.unsqueeze(-1), valid3, zero_ratio, random_ratio, generator)


def random_token_mask(
    x: Tensor,
    ratio: float = 0.25,
    *,
    zero_ratio: float = 0.8,
    random_ratio: float = 0.1,
    span: int = 1,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """NDT1 masking: hide whole time steps (every neuron of a bin).

    Selects exactly ``n_selected(ratio, T_valid)`` valid time steps per sample; with
    ``span > 1`` they come in contiguous runs of random length ``1..span`` (NDT1's span
    ramp raises ``span`` during training). Of the selected entries, ``zero_ratio`` are
    zeroed, ``random_ratio`` get a random count, the rest are kept (drawn per entry).

    Args:
        x: ``[B, T, N]`` binned counts.
        ratio: fraction of valid time steps to select (NDT1: 0.25).
        zero_ratio: fraction of selected entries set to 0.
        random_ratio: fraction of selected entries set to a random count.
        span: longest contiguous run of selected time steps.
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        generator: source of randomness.

    Returns:
        :class:`MaskResult`; ``mask`` is ``True`` on every valid entry of a selected step.
    """
    return _time_step_mask(x, ratio, span, valid, generator, zero_ratio, random_ratio)


def causal_mask(
    x: Tensor,
    ratio: float = 0.6,
    *,
    zero_ratio: float = 1.0,
    random_ratio: float = 0.0,
    span: int = 1,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """MtM causal masking: hide a random ``ratio`` of time steps, to be predicted causally.

    The mask is the same kind as :func:`random_token_mask` (whole time steps); what
    makes it causal is the model: it must attend with no forward context (MtM sets
    ``context_forward = 0`` for this scheme), so each masked step is predicted from
    the past only.

    Args:
        x: ``[B, T, N]`` binned counts.
        ratio: fraction of valid time steps to select (MtM: 0.6).
        zero_ratio, random_ratio: replacement of selected entries (see module docs).
        span: longest contiguous run of selected time steps.
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        generator: source of randomness.

    Returns:
        :class:`MaskResult`.
    """
    return _time_step_mask(x, ratio, span, valid, generator, zero_ratio, random_ratio)


def forward_mask(
    x: Tensor,
    n_forward: int,
    *,
    zero_ratio: float = 1.0,
    random_ratio: float = 0.0,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """NLB forward prediction: hide the last ``n_forward`` valid time steps of each sample.

    A sample with fewer valid steps than ``n_forward`` has all its valid steps hidden.
    Deterministic unless ``random_ratio`` or ``0 < zero_ratio < 1`` draw from ``generator``.

    Args:
        x: ``[B, T, N]`` binned counts.
        n_forward: number of trailing bins to predict, ``0 <= n_forward <= T``.
        zero_ratio, random_ratio: replacement of selected entries (see module docs).
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        generator: source of randomness for the replacement.

    Returns:
        :class:`MaskResult`.
    """
    _check_x(x)
    _check_replacement(zero_ratio, random_ratio)
    t = x.shape[1]
    if not isinstance(n_forward, int) or not 0 <= n_forward <= t:
        raise ValueError(f"n_forward must be an int in [0, T={t}], got {n_forward!r}")
    valid3 = _valid_3d(x, valid)
    time_valid = valid3.any(dim=-1)  # [B, T]
    from_end = time_valid.flip(1).cumsum(1).flip(1)  # [B, T] 1 = last valid step
    chosen = time_valid & (from_end <= n_forward)
    return _result(x, chosen.unsqueeze(-1), valid3, zero_ratio, random_ratio, generator)


# --------------------------------------------------------------------------- neuron schemes


def neuron_mask(
    x: Tensor,
    ratio: float = 0.3,
    *,
    zero_ratio: float = 1.0,
    random_ratio: float = 0.0,
    valid: Tensor | None = None,
    regions: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """MtM neuron masking: hide whole neurons (all time steps), chosen per sample.

    Args:
        x: ``[B, T, N]`` binned counts.
        ratio: fraction of valid neurons to select (MtM: 0.3).
        zero_ratio, random_ratio: replacement of selected entries (see module docs).
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        regions: optional ``[B, N]`` or ``[N]`` region ids; ``-1`` marks padded neurons.
        generator: source of randomness.

    Returns:
        :class:`MaskResult`; exactly ``n_selected(ratio, N_valid)`` neurons per sample.
    """
    _check_x(x)
    _check_ratio(ratio, "ratio")
    _check_replacement(zero_ratio, random_ratio)
    regions2 = _regions_2d(regions, x) if regions is not None else None
    valid3 = _valid_3d(x, valid, regions2)
    neuron_valid = valid3.any(dim=1)  # [B, N]
    chosen = _choose(neuron_valid, n_selected(ratio, neuron_valid.sum(dim=-1)), generator)
    return _result(x, chosen.unsqueeze(1), valid3, zero_ratio, random_ratio, generator)


def _pick_region(regions: Tensor, neuron_valid: Tensor, generator: torch.Generator | None) -> Tensor:
    """One region id per sample, uniform over the regions with a valid neuron; ``-1`` if none.

    Args:
        regions: ``[B, N]`` int64.
        neuron_valid: ``[B, N]`` bool.

    Returns:
        ``[B]`` int64 region ids.
    """
    draw = _draw_device(generator)
    regions_cpu, valid_cpu = regions.cpu(), neuron_valid.cpu()
    picked = torch.full((regions.shape[0],), -1, dtype=torch.int64)
    for i in range(regions.shape[0]):
        present = torch.unique(regions_cpu[i][valid_cpu[i]])  # sorted, so the draw is reproducible
        if present.numel() > 0:
            picked[i] = present[int(torch.randint(present.numel(), (1,), generator=generator, device=draw))]
    return picked.to(regions.device)


def intra_region_mask(
    x: Tensor,
    regions: Tensor,
    ratio: float = 0.3,
    *,
    hide_other_regions: bool = True,
    zero_ratio: float = 1.0,
    random_ratio: float = 0.0,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """MtM intra-region masking: predict some of one region's neurons from the rest of it.

    Per sample, one region is chosen uniformly among those with a valid neuron, and
    ``n_selected(ratio, region_size)`` of its neurons are selected (all time steps);
    ``mask`` marks only those. With ``hide_other_regions`` (MtM's masker) every
    neuron outside the chosen region is also hidden in ``masked_input`` — but not
    scored — so the prediction can only use the region's own unmasked neurons.

    Args:
        x: ``[B, T, N]`` binned counts.
        regions: ``[B, N]`` or ``[N]`` int region ids; ``-1`` marks padded neurons.
        ratio: fraction of the chosen region's neurons to select (MtM: 0.3).
        hide_other_regions: also hide (not score) the other regions' neurons.
        zero_ratio, random_ratio: replacement of hidden entries (see module docs).
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        generator: source of randomness.

    Returns:
        :class:`MaskResult`.
    """
    _check_x(x)
    _check_ratio(ratio, "ratio")
    _check_replacement(zero_ratio, random_ratio)
    regions2 = _regions_2d(regions, x)
    valid3 = _valid_3d(x, valid, regions2)
    neuron_valid = valid3.any(dim=1)  # [B, N]
    picked = _pick_region(regions2, neuron_valid, generator)  # [B]
    members = neuron_valid & (regions2 == picked.unsqueeze(1))  # [B, N]
    chosen = _choose(members, n_selected(ratio, members.sum(dim=-1)), generator)  # [B, N]
    hidden = None
    if hide_other_regions:
        hidden = (chosen | (neuron_valid & ~members)).unsqueeze(1)  # [B, 1, N]
    return _result(x, chosen.unsqueeze(1), valid3, zero_ratio, random_ratio, generator, hidden=hidden)


def inter_region_mask(
    x: Tensor,
    regions: Tensor,
    *,
    zero_ratio: float = 1.0,
    random_ratio: float = 0.0,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """MtM inter-region masking: hide one whole region, to be predicted from the others.

    Per sample, one region is chosen uniformly among those with a valid neuron and all
    its valid entries are selected. (A sample recorded in a single region then has
    everything hidden; leave such sessions out of this scheme.)

    Args:
        x: ``[B, T, N]`` binned counts.
        regions: ``[B, N]`` or ``[N]`` int region ids; ``-1`` marks padded neurons.
        zero_ratio, random_ratio: replacement of selected entries (see module docs).
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        generator: source of randomness.

    Returns:
        :class:`MaskResult`.
    """
    _check_x(x)
    _check_replacement(zero_ratio, random_ratio)
    regions2 = _regions_2d(regions, x)
    valid3 = _valid_3d(x, valid, regions2)
    neuron_valid = valid3.any(dim=1)  # [B, N]
    picked = _pick_region(regions2, neuron_valid, generator)  # [B]
    chosen = neuron_valid & (regions2 == picked.unsqueeze(1))  # [B, N]
    return _result(x, chosen.unsqueeze(1), valid3, zero_ratio, random_ratio, generator)


# --------------------------------------------------------------------------- MtM multi-task


def sample_scheme(
    generator: torch.Generator | None = None,
    schemes: tuple[MaskingScheme | str, ...] | list[MaskingScheme | str] | None = None,
) -> MaskingScheme:
    """Draw one masking scheme uniformly (MtM alternates schemes per batch).

    Args:
        generator: source of randomness.
        schemes: the schemes to draw from (default: all four; leave the region schemes
            out for data without region labels).

    Returns:
        The drawn :class:`MaskingScheme`.
    """
    pool = [MaskingScheme(s) for s in (schemes if schemes is not None else list(MaskingScheme))]
    if not pool:
        raise ValueError("sample_scheme: schemes is empty; pass at least one MaskingScheme")
    i = int(torch.randint(len(pool), (1,), generator=generator, device=_draw_device(generator)))
    return pool[i]


def apply_scheme(
    scheme: MaskingScheme | str,
    x: Tensor,
    *,
    ratio: float | None = None,
    regions: Tensor | None = None,
    valid: Tensor | None = None,
    zero_ratio: float = 1.0,
    random_ratio: float = 0.0,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """Apply one of MtM's schemes by name; its prompt id is ``MaskingScheme(scheme).prompt_id``.

    Args:
        scheme: a :class:`MaskingScheme` or its value (``"neuron"``, ``"causal"``,
            ``"inter_region"``, ``"intra_region"``).
        x: ``[B, T, N]`` binned counts.
        ratio: override of the scheme's MtM ratio (not accepted by inter-region).
        regions: ``[B, N]`` or ``[N]`` region ids, required by the region schemes.
        valid: optional ``[B, T, N]`` or ``[B, N]`` bool, ``False`` = padding.
        zero_ratio, random_ratio: replacement of selected entries (see module docs).
        generator: source of randomness.

    Returns:
        :class:`MaskResult`.
    """
    try:
        scheme = MaskingScheme(scheme)
    except ValueError as err:
        names = [s.value for s in MaskingScheme]
        raise ValueError(f"unknown masking scheme {scheme!r}; choose one of {names}") from err
    if scheme.needs_regions and regions is None:
        raise ValueError(f"masking scheme {scheme.value!r} needs region ids: pass regions=[B, N] or [N]")
    if scheme is MaskingScheme.INTER_REGION and ratio is not None:
        raise ValueError("inter_region masks a whole region and takes no ratio; pass ratio=None")
    _check_x(x)
    if regions is not None:
        # Fold region padding (-1) into validity so every scheme, causal included, skips it.
        valid = _valid_3d(x, valid, _regions_2d(regions, x))
    common = {"zero_ratio": zero_ratio, "random_ratio": random_ratio, "valid": valid, "generator": generator}
    r = ratio if ratio is not None else scheme.default_ratio
    if scheme is MaskingScheme.NEURON:
        return neuron_mask(x, r, **common)
    if scheme is MaskingScheme.CAUSAL:
        return causal_mask(x, r, **common)
    if scheme is MaskingScheme.INTRA_REGION:
        return intra_region_mask(x, regions, r, **common)
    return inter_region_mask(x, regions, **common)
