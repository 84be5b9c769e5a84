import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn import (
    Attention,
    LearnedPositionEmbedding,
    LearnedTimeEmbedding,
    RotaryTimeEmbedding,
    SinusoidalEmbedding,
    apply_rotary,
    invert_rotary,
    logspace_periods,
)

FAST = settings(max_examples=25, deadline=None)


def test_logspace_periods_endpoints():
    p = logspace_periods(5, t_min=1e-3, t_max=1.0)
    torch.testing.assert_close(p[[0, -1]], torch.tensor([1e-3, 1.0], dtype=torch.float64))
    q = logspace_periods(4, t_min=1.0, t_max=16.0, endpoint=False)
    torch.testing.assert_close(q, torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="t_min < t_max"):
        logspace_periods(3, t_min=2.0, t_max=1.0)


def test_rotary_defaults_are_poyo():
    rot = RotaryTimeEmbedding(head_dim=64)
    assert rot.rotate_dim == 32
    periods = rot.periods
    assert periods.shape == (16,)
    assert periods[0].item() == pytest.approx(1e-4)
    assert periods[-1].item() == pytest.approx(1e-4 * (4.0 / 1e-4) ** (15 / 16))
    assert periods[-1].item() == pytest.approx(2.0627, abs=1e-3)
    # The unrotated half of each head is left exactly as it is.
    table = rot(torch.rand(3, 5))
    torch.testing.assert_close(table[..., 16:, 0], torch.ones(3, 5, 16))
    torch.testing.assert_close(table[..., 16:, 1], torch.zeros(3, 5, 16))
    x = torch.randn(3, 5, 64)
    assert torch.equal(apply_rotary(x, table)[..., 32:], x[..., 32:])


def _full_table(rot: RotaryTimeEmbedding, t: torch.Tensor) -> torch.Tensor:
    """The float64 reference: cos/sin of every pair's angle (unrotated pairs: angle 0)."""
    angles = t.double()[..., None] * torch.tensor(rot.omega, dtype=torch.float64)
    return torch.stack((angles.cos(), angles.sin()), dim=-1)


@FAST
@given(st.integers(0, 2**16), st.sampled_from([torch.float32, torch.float64]))
def test_compact_table_equals_full_head_rotation(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    rot = RotaryTimeEmbedding(head_dim=16)  # rotates 8 of 16 dims
    t = torch.rand(2, 7, generator=gen, dtype=torch.float64).to(dtype)
    x = torch.randn(2, 3, 7, 16, generator=gen, dtype=torch.float64).to(dtype)  # [B, H, L, Dh]
    expected = apply_rotary(x, _full_table(rot, t).to(dtype).unsqueeze(1))
    torch.testing.assert_close(apply_rotary(x, rot(t).unsqueeze(1)), expected)
    compact = rot(t)[..., :4, :].unsqueeze(1)  # a table of the rotated pairs only
    torch.testing.assert_close(apply_rotary(x, compact), expected)


def test_apply_rotary_strided_and_low_precision_inputs():
    # Non-contiguous views (keys / values split from one projection) and bf16 take the real path.
    rot = RotaryTimeEmbedding(head_dim=8, rotate_dim=8)
    t = torch.rand(5)
    kv = torch.randn(5, 2, 3, 8)  # [L, k|v, H, Dh]
    k = kv[:, 0]
    torch.testing.assert_close(apply_rotary(k, rot(t)[:, None]), apply_rotary(k.contiguous(), rot(t)[:, None]))
    odd = torch.randn(5, 9)[:, 1:]  # odd storage offset: no complex view
    torch.testing.assert_close(apply_rotary(odd, rot(t)), apply_rotary(odd.contiguous(), rot(t)))
    bf16 = apply_rotary(k.bfloat16(), rot(t)[:, None])
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), apply_rotary(k, rot(t)[:, None]), atol=3e-2, rtol=3e-2)
    with pytest.raises(ValueError, match="pairs"):
        apply_rotary(torch.randn(5, 4), rot(t))


def test_rotary_float32_window_keeps_sub_ms_resolution():
    # Over a 1 s window the float32 table matches the float64 reference to 1e-6, so two spikes
    # 0.1 ms apart (the shortest period) still get clearly different angles.
    rot = RotaryTimeEmbedding(head_dim=64)
    t = torch.linspace(0, 1, 10_001, dtype=torch.float64)  # 0.1 ms grid
    table = rot(t.float())
    reference = _full_table(rot, t.float())
    torch.testing.assert_close(table.double(), reference, atol=1e-6, rtol=0)
    half = rot(torch.tensor([0.5, 0.5 + 5e-5]))[:, 0]  # 50 us apart: half a turn of the 0.1 ms period
    torch.testing.assert_close(half[1], -half[0], atol=1e-2, rtol=0)


@FAST
@given(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=8), st.integers(0, 2**16))
def test_apply_rotary_matches_complex_reference(times, seed):
    gen = torch.Generator().manual_seed(seed)
    rot = RotaryTimeEmbedding(head_dim=8, rotate_dim=8, t_min=1e-2, t_max=2.0)
    t = torch.tensor(times, dtype=torch.float64)
    x = torch.randn(len(times), 8, generator=gen, dtype=torch.float64)
    omega = 2 * math.pi / rot.periods  # [4]
    z = torch.complex(x[:, 0::2], x[:, 1::2]) * torch.exp(1j * t[:, None] * omega)
    expected = torch.stack((z.real, z.imag), dim=-1).flatten(-2)
    torch.testing.assert_close(apply_rotary(x, rot(t)), expected)
    torch.testing.assert_close(apply_rotary(apply_rotary(x, rot(t)), invert_rotary(rot(t))), x)


@FAST
@given(st.lists(st.floats(0.0, 2.0, width=32), min_size=1, max_size=16))
def test_rotary_float32_window_times_match_float64_reference(times):
    rot = RotaryTimeEmbedding(head_dim=64)
    t32 = torch.tensor(times, dtype=torch.float32)
    table = rot(t32)
    assert table.dtype == torch.float32
    # Reference: the same (float32-representable) times, angles and trig in float64 numpy.
    omega = np.asarray(rot.omega)
    angles = np.asarray(times, dtype=np.float64)[:, None] * omega
    expected = torch.from_numpy(np.stack((np.cos(angles), np.sin(angles)), axis=-1)).float()
    torch.testing.assert_close(table, expected, atol=1e-6, rtol=0)


def test_rotary_float32_error_bounded_by_time_rounding():
    # Window-relative float32 times are off from the exact times by <= 1 ulp; the phase error
    # is then omega_max * ulp, tiny for all but the 0.1 ms period.
    rot = RotaryTimeEmbedding(head_dim=64)
    exact = torch.linspace(0, 1, 1001, dtype=torch.float64) + 1e-9
    diff = (rot(exact.float()).double() - rot(exact)).abs().amax(dim=(0, 2))  # [32]
    bound = torch.tensor(rot.omega, dtype=torch.float64) * 2**-24 * 2 + 1e-6
    assert bool((diff <= bound).all())
    assert diff[8:].max() < 1e-5  # periods >= 20 ms


@FAST
@given(st.floats(-1000.0, 1000.0), st.booleans(), st.integers(0, 2**16))
def test_rotary_attention_invariant_to_time_shift(shift, rotate_value, seed):
    torch.manual_seed(seed)
    attn = Attention(dim=16, heads=2, head_dim=8, rotate_value=rotate_value).double()
    rot = RotaryTimeEmbedding(head_dim=8, t_min=1e-3, t_max=2.0)
    x, ctx = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 7, 16, dtype=torch.float64)
    tq, tk = torch.rand(2, 5, dtype=torch.float64), torch.rand(2, 7, dtype=torch.float64)
    out = attn(x, ctx, rotary=rot(tq), context_rotary=rot(tk))
    shifted = attn(x, ctx, rotary=rot(tq + shift), context_rotary=rot(tk + shift))
    torch.testing.assert_close(shifted, out, atol=1e-8, rtol=1e-8)
    self_out = attn(x, rotary=rot(tq))
    torch.testing.assert_close(attn(x, rotary=rot(tq + shift)), self_out, atol=1e-8, rtol=1e-8)


def test_rotary_attention_float32_window_times_shift():
    # float32 times round by ~3e-8 s; with periods >= 10 ms the phase error is ~2e-5 rad.
    torch.manual_seed(0)
    attn = Attention(dim=16, heads=2, rotate_value=True)
    rot = RotaryTimeEmbedding(head_dim=8, t_min=1e-2)
    x = torch.randn(2, 6, 16)
    t = torch.rand(2, 6)
    torch.testing.assert_close(attn(x, rotary=rot(t + 0.25)), attn(x, rotary=rot(t)), atol=1e-4, rtol=1e-4)


def test_rotary_rejects_integer_times():
    with pytest.raises(TypeError, match="float seconds"):
        RotaryTimeEmbedding(head_dim=8)(torch.arange(4))


def test_rotary_frequencies_survive_half_precision_cast():
    rot = RotaryTimeEmbedding(head_dim=8).half()
    torch.testing.assert_close(rot(torch.tensor([0.3])), RotaryTimeEmbedding(head_dim=8)(torch.tensor([0.3])))


@pytest.mark.parametrize("dim", [6, 7])
def test_sinusoidal_matches_ndt1(dim):
    positions = torch.arange(10)
    pe = torch.zeros(10, dim)
    div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(positions[:, None] * div)
    pe[:, 1::2] = torch.cos(positions[:, None] * div)[:, : dim // 2]
    torch.testing.assert_close(SinusoidalEmbedding(dim=dim)(positions), pe, atol=1e-5, rtol=1e-5)


def test_sinusoidal_continuous_time_periods():
    emb = SinusoidalEmbedding(dim=4, periods=torch.tensor([1.0, 4.0]))
    out = emb(torch.tensor([0.25]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, math.sin(math.pi / 8), math.cos(math.pi / 8)]]))
    with pytest.raises(ValueError, match="ceil"):
        SinusoidalEmbedding(dim=4, periods=torch.ones(3))


def test_learned_position_embedding_range():
    emb = LearnedPositionEmbedding(num_positions=4, dim=3)
    assert emb(torch.tensor([[0, 3]])).shape == (1, 2, 3)
    with pytest.raises(IndexError, match="num_positions"):
        emb(torch.tensor([4]))
    with pytest.raises(TypeError, match="LearnedTimeEmbedding"):
        emb(torch.tensor([0.5]))


def test_learned_time_embedding_bins_grid_times():
    emb = LearnedTimeEmbedding(dim=2, resolution=0.01, max_time=0.05)
    assert emb.table.num_positions == 5
    out = emb(torch.tensor([0.0, 0.009, 0.03, 0.0499]))
    rows = emb.table.embedding.weight
    torch.testing.assert_close(out, rows[[0, 0, 3, 4]])
    with pytest.raises(IndexError):
        emb(torch.tensor([0.05]))


def test_rotary_table_written_in_place_equals_stacked_trig_and_keeps_time_gradients():
    rot = RotaryTimeEmbedding(head_dim=64)
    times = torch.rand(3, 700)
    omega = torch.tensor(rot.omega[:16], dtype=torch.float64)
    reduced = torch.remainder(times.double()[..., None] * omega, 2 * math.pi).float()
    expected = torch.stack((reduced.cos(), reduced.sin()), dim=-1)  # the formula before the in-place table
    torch.testing.assert_close(rot(times, compact=True), expected, rtol=0, atol=1e-5)
    times64 = times.double().requires_grad_()
    table = rot(times64, compact=True)
    (grad,) = torch.autograd.grad(table[..., 1].sum(), times64)
    torch.testing.assert_close(grad, (table[..., 0] * torch.tensor(rot.omega[:16], dtype=torch.float64)).sum(-1))
