"""Masking schemes: exact fractions, structure, padding, untouched inputs, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.objectives import (
    MaskingScheme,
    MaskResult,
    apply_scheme,
    causal_mask,
    forward_mask,
    inter_region_mask,
    intra_region_mask,
    n_selected,
    neuron_mask,
    random_token_mask,
    sample_scheme,
)

FAST = settings(max_examples=30, deadline=None)


def expected_n(ratio: float, m: int) -> int:
    """The documented selection size, written out independently."""
    n = math.floor(ratio * m + 0.5)
    if ratio > 0 and m > 0:
        n = max(n, 1)
    return min(n, m)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def batches(draw, with_regions: bool = False):
    """Counts [B, T, N] with trailing time padding, padded neurons, and optional region ids."""
    b, t, n = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 10))
    seed = draw(st.integers(0, 2**31 - 1))
    g = _gen(seed)
    x = torch.randint(0, 7, (b, t, n), generator=g).float()
    t_len = torch.tensor([draw(st.integers(0, t)) for _ in range(b)])
    n_pad = torch.rand(b, n, generator=g) < draw(st.sampled_from([0.0, 0.2]))
    valid = (torch.arange(t)[None, :, None] < t_len[:, None, None]) & ~n_pad[:, None, :]  # [B, T, N]
    regions = None
    if with_regions:
        n_regions = draw(st.integers(1, 3))
        regions = torch.randint(0, n_regions, (b, n), generator=g)
        regions[torch.rand(b, n, generator=g) < 0.15] = -1
    return x, valid, regions, draw(st.integers(0, 2**31 - 1))


def _full_valid(valid: torch.Tensor, regions: torch.Tensor | None) -> torch.Tensor:
    return valid if regions is None else valid & (regions != -1)[:, None, :]


def _common_properties(x: torch.Tensor, res: MaskResult, valid: torch.Tensor) -> None:
    assert isinstance(res, MaskResult)
    assert res.mask.shape == x.shape and res.mask.dtype == torch.bool
    assert res.masked_input.shape == x.shape and res.masked_input.dtype == x.dtype
    assert not (res.mask & ~valid).any(), "padding was masked"
    assert torch.equal(res.masked_input[~res.mask], x[~res.mask]), "an unmasked entry changed"


def _assert_same(a: MaskResult, b: MaskResult) -> None:
    assert torch.equal(a.mask, b.mask) and torch.equal(a.masked_input, b.masked_input)


# --------------------------------------------------------------------------- time-step schemes


time_schemes = st.sampled_from([random_token_mask, causal_mask])


@FAST
@given(data=batches(), ratio=st.floats(0.0, 1.0), span=st.integers(1, 4), fn=time_schemes)
def test_time_step_schemes(data, ratio, span, fn):
    x, valid, _, seed = data
    res = fn(x, ratio, span=span, valid=valid, generator=_gen(seed))
    _common_properties(x, res, valid)
    time_valid = valid.any(-1)  # [B, T]
    selected = res.mask.any(-1)  # [B, T]
    # Whole time steps: a selected step has every valid neuron of that bin masked.
    assert torch.equal(res.mask, selected[:, :, None] & valid)
    for b in range(x.shape[0]):
        assert int(selected[b].sum()) == expected_n(ratio, int(time_valid[b].sum()))
    _assert_same(res, fn(x, ratio, span=span, valid=valid, generator=_gen(seed)))


def test_random_token_mask_replacement_fractions():
    g = _gen(0)
    x = torch.randint(1, 9, (8, 200, 40), generator=g).float()  # no zeros, so zeroing is visible
    res = random_token_mask(x, 0.25, generator=_gen(1))
    m = res.mask
    assert m.sum() == 8 * 50 * 40
    inp, orig = res.masked_input[m], x[m]
    zeroed = inp == 0
    kept = (inp == orig) & ~zeroed
    assert abs(zeroed.float().mean().item() - 0.8) < 0.02
    # Random draws equal the original value ~1/8 of the time, so "kept" is ~0.1 + 0.1 / 8.
    assert abs(kept.float().mean().item() - (0.1 + 0.1 / 8)) < 0.02
    assert inp.min() >= 0 and inp.max() <= x.max()
    assert torch.equal(inp, inp.round())  # random replacements are counts
    randomised = ~zeroed & ~kept
    assert randomised.float().mean().item() > 0.07


def test_random_token_mask_integer_input_and_random_only():
    x = torch.randint(0, 5, (2, 30, 6), generator=_gen(3))
    res = random_token_mask(x, 0.5, zero_ratio=0.0, random_ratio=1.0, generator=_gen(4))
    assert res.masked_input.dtype == torch.int64
    vals = res.masked_input[res.mask]
    assert vals.min() >= x.min() and vals.max() <= x.max()
    assert not torch.equal(vals, x[res.mask])


def test_random_token_mask_spans_form_runs():
    x = torch.ones(4, 400, 3)
    res = random_token_mask(x, 0.25, span=6, generator=_gen(5))
    steps = res.mask[..., 0]  # [B, T]
    assert torch.all(steps.sum(-1) == 100)
    starts = steps[:, 1:] & ~steps[:, :-1]
    n_runs = starts.sum(-1) + steps[:, 0].long()
    assert torch.all(n_runs < 60)  # ~29 runs of mean length 3.5 (vs ~75 runs for single steps)


@FAST
@given(data=batches(), n_forward=st.integers(0, 12))
def test_forward_mask_masks_last_valid_bins(data, n_forward):
    x, valid, _, seed = data
    t = x.shape[1]
    if n_forward > t:
        with pytest.raises(ValueError, match="n_forward"):
            forward_mask(x, n_forward, valid=valid)
        return
    res = forward_mask(x, n_forward, valid=valid)
    _common_properties(x, res, valid)
    time_valid = valid.any(-1)
    for b in range(x.shape[0]):
        steps = time_valid[b].nonzero().squeeze(1)
        want = torch.zeros(t, dtype=torch.bool)
        want[steps[len(steps) - min(n_forward, len(steps)) :]] = True
        assert torch.equal(res.mask[b], want[:, None] & valid[b])
    assert torch.all(res.masked_input[res.mask] == 0)


# --------------------------------------------------------------------------- neuron schemes


@FAST
@given(data=batches(with_regions=True), ratio=st.floats(0.0, 1.0), use_regions=st.booleans())
def test_neuron_mask(data, ratio, use_regions):
    x, valid, regions, seed = data
    regions = regions if use_regions else None
    full_valid = _full_valid(valid, regions)
    res = neuron_mask(x, ratio, valid=valid, regions=regions, generator=_gen(seed))
    _common_properties(x, res, full_valid)
    neuron_valid = full_valid.any(1)  # [B, N]
    selected = res.mask.any(1)  # [B, N]
    assert torch.equal(res.mask, selected[:, None, :] & full_valid)  # whole neurons
    for b in range(x.shape[0]):
        assert int(selected[b].sum()) == expected_n(ratio, int(neuron_valid[b].sum()))
    assert torch.all(res.masked_input[res.mask] == 0)
    _assert_same(res, neuron_mask(x, ratio, valid=valid, regions=regions, generator=_gen(seed)))


@FAST
@given(data=batches(with_regions=True), ratio=st.floats(0.0, 1.0), hide=st.booleans(), shared=st.booleans())
def test_intra_region_mask(data, ratio, hide, shared):
    x, valid, regions, seed = data
    if shared:  # one [N] region vector for the whole batch
        regions = regions[0]
    regions2 = regions.expand(x.shape[0], -1) if regions.ndim == 1 else regions
    full_valid = _full_valid(valid, regions2)
    res = intra_region_mask(x, regions, ratio, hide_other_regions=hide, valid=valid, generator=_gen(seed))
    assert res.mask.shape == x.shape and not (res.mask & ~full_valid).any()
    neuron_valid = full_valid.any(1)
    selected = res.mask.any(1)  # [B, N]
    assert torch.equal(res.mask, selected[:, None, :] & full_valid)  # whole neurons
    for b in range(x.shape[0]):
        ids = regions2[b][selected[b]].unique()
        assert ids.numel() <= 1, "masked neurons span more than one region"
        if ids.numel() == 1:
            members = neuron_valid[b] & (regions2[b] == ids[0])
            assert int(selected[b].sum()) == expected_n(ratio, int(members.sum()))
            others = (neuron_valid[b] & ~members)[None, :] & full_valid[b]
            if hide:  # MtM: the other regions are hidden from the input but not scored
                assert torch.all(res.masked_input[b][others] == 0)
            else:
                assert torch.equal(res.masked_input[b][others], x[b][others])
            keep = ~res.mask[b] & ~others
            assert torch.equal(res.masked_input[b][keep], x[b][keep])
        else:
            assert ratio == 0 or not neuron_valid[b].any()
    if not hide:
        _common_properties(x, res, full_valid)
    _assert_same(
        res, intra_region_mask(x, regions, ratio, hide_other_regions=hide, valid=valid, generator=_gen(seed))
    )


@FAST
@given(data=batches(with_regions=True))
def test_inter_region_mask(data):
    x, valid, regions, seed = data
    full_valid = _full_valid(valid, regions)
    res = inter_region_mask(x, regions, valid=valid, generator=_gen(seed))
    _common_properties(x, res, full_valid)
    neuron_valid = full_valid.any(1)
    selected = res.mask.any(1)
    assert torch.equal(res.mask, selected[:, None, :] & full_valid)
    for b in range(x.shape[0]):
        ids = regions[b][selected[b]].unique()
        if neuron_valid[b].any():
            assert ids.numel() == 1
            assert torch.equal(selected[b], neuron_valid[b] & (regions[b] == ids[0]))  # the whole region
        else:
            assert ids.numel() == 0
    _assert_same(res, inter_region_mask(x, regions, valid=valid, generator=_gen(seed)))


def test_region_choice_is_uniform_over_present_regions():
    b, n = 600, 9
    regions = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2, 5]).expand(b, n)  # sizes must not bias the pick
    res = inter_region_mask(torch.ones(b, 2, n), regions, generator=_gen(7))
    picked = torch.stack([regions[i][res.mask[i].any(0)][0] for i in range(b)])
    for r in (0, 1, 2, 5):
        assert abs((picked == r).float().mean().item() - 0.25) < 0.06


def test_valid_per_neuron_and_errors():
    x = torch.ones(2, 5, 4)
    valid_n = torch.tensor([[True, True, False, True], [False, True, True, True]])
    res = neuron_mask(x, 1.0, valid=valid_n, generator=_gen(0))
    assert torch.equal(res.mask, valid_n[:, None, :].expand_as(x))
    with pytest.raises(ValueError, match=r"\[B, T, N\]"):
        neuron_mask(torch.ones(5, 4))
    with pytest.raises(ValueError, match="valid"):
        neuron_mask(x, valid=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        neuron_mask(x, valid=torch.ones(2, 4))
    with pytest.raises(ValueError, match="ratio"):
        neuron_mask(x, 1.5)
    with pytest.raises(ValueError, match="zero_ratio"):
        random_token_mask(x, zero_ratio=0.8, random_ratio=0.3)
    with pytest.raises(ValueError, match="span"):
        random_token_mask(x, span=0)
    with pytest.raises(TypeError, match="integer"):
        inter_region_mask(x, torch.zeros(4))
    with pytest.raises(ValueError, match="regions"):
        inter_region_mask(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="-1"):
        inter_region_mask(x, torch.full((4,), -2))


def test_n_selected_matches_formula():
    eligible = torch.arange(0, 40)
    for ratio in (0.0, 0.05, 0.25, 0.3, 0.5, 0.6, 0.999, 1.0):
        assert n_selected(ratio, eligible).tolist() == [expected_n(ratio, m) for m in range(40)]


def test_input_is_not_modified():
    x = torch.randint(0, 4, (2, 6, 5)).float()
    before = x.clone()
    random_token_mask(x, 0.5, generator=_gen(0))
    intra_region_mask(x, torch.tensor([0, 0, 1, 1, 1]), 0.5, generator=_gen(0))
    assert torch.equal(x, before)


# --------------------------------------------------------------------------- MtM multi-task


def test_scheme_prompt_ids_and_defaults():
    assert sorted(s.prompt_id for s in MaskingScheme) == [0, 1, 2, 3]
    assert MaskingScheme("causal").default_ratio == 0.6
    assert MaskingScheme.NEURON.default_ratio == 0.3 and MaskingScheme.INTRA_REGION.default_ratio == 0.3
    assert MaskingScheme.INTER_REGION.needs_regions and not MaskingScheme.CAUSAL.needs_regions


def test_sample_scheme_is_seeded_and_covers_pool():
    draws = [sample_scheme(_gen(s)) for s in range(200)]
    assert set(draws) == set(MaskingScheme)
    assert draws == [sample_scheme(_gen(s)) for s in range(200)]
    pool = ["neuron", MaskingScheme.CAUSAL]
    assert {sample_scheme(_gen(s), pool) for s in range(50)} == {MaskingScheme.NEURON, MaskingScheme.CAUSAL}
    with pytest.raises(ValueError, match="empty"):
        sample_scheme(_gen(0), [])


@FAST
@given(data=batches(with_regions=True), scheme=st.sampled_from(list(MaskingScheme)))
def test_apply_scheme_dispatches(data, scheme):
    x, valid, regions, seed = data
    full_valid = _full_valid(valid, regions)
    res = apply_scheme(scheme.value, x, regions=regions, valid=valid, generator=_gen(seed))
    if scheme is not MaskingScheme.INTRA_REGION:  # intra-region also hides (unscored) other regions
        _common_properties(x, res, full_valid)
    direct = {
        MaskingScheme.NEURON: lambda: neuron_mask(x, 0.3, valid=full_valid, generator=_gen(seed)),
        MaskingScheme.CAUSAL: lambda: causal_mask(x, 0.6, valid=full_valid, generator=_gen(seed)),
        MaskingScheme.INTER_REGION: lambda: inter_region_mask(x, regions, valid=valid, generator=_gen(seed)),
        MaskingScheme.INTRA_REGION: lambda: intra_region_mask(x, regions, 0.3, valid=valid, generator=_gen(seed)),
    }[scheme]()
    _assert_same(res, direct)


def test_apply_scheme_errors():
    x = torch.ones(1, 4, 3)
    with pytest.raises(ValueError, match="unknown masking scheme"):
        apply_scheme("temporal", x)
    with pytest.raises(ValueError, match="region ids"):
        apply_scheme(MaskingScheme.INTER_REGION, x)
    with pytest.raises(ValueError, match="no ratio"):
        apply_scheme("inter_region", x, regions=torch.zeros(3, dtype=torch.long), ratio=0.5)
