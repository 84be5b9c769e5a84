import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn import PerceiverIO, RotaryTimeEmbedding, pack

FAST = settings(max_examples=20, deadline=None)
D = 8


def model(seed=0):
    torch.manual_seed(seed)
    rot = RotaryTimeEmbedding(head_dim=4, t_min=1e-3, t_max=4.0)
    return PerceiverIO(dim=D, depth=2, cross_heads=2, self_heads=2, head_dim=4, ffn_mult=2, rotary=rot).eval()


def padded_batch(lengths, gen):
    """Right-padded [B, L, D] tensors + masks for the given per-sample lengths."""
    b, max_len = len(lengths), max(max(lengths), 1)
    mask = torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]
    x = torch.randn(b, max_len, D, generator=gen, dtype=torch.float64)
    t = torch.rand(b, max_len, generator=gen, dtype=torch.float64)
    return x, t, mask


@FAST
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(1, 4), st.integers(1, 3)), min_size=1, max_size=3),
    st.integers(0, 2**16),
)
def test_packed_equals_padded(sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    net = model(seed).double()
    n_in, n_lat, n_q = (list(s) for s in zip(*sizes))
    x, xt, xm = padded_batch(n_in, gen)
    lat, lt, lm = padded_batch(n_lat, gen)
    q, qt, qm = padded_batch(n_q, gen)
    padded = net(x, xt, lat, lt, q, qt, input_mask=xm, latent_mask=lm)

    (fx, cx), (fl, cl), (fq, cq) = pack(x, xm), pack(lat, lm), pack(q, qm)
    packed = net(
        fx, xt[xm], fl, lt[lm], fq, qt[qm], input_cu_seqlens=cx, latent_cu_seqlens=cl, query_cu_seqlens=cq
    )
    assert packed.shape == (sum(n_q), D)
    torch.testing.assert_close(packed, padded[qm])


@FAST
@given(st.floats(-100, 100), st.integers(0, 2**16))
def test_time_shift_invariant(shift, seed):
    gen = torch.Generator().manual_seed(seed)
    net = model(seed).double()
    x, xt, xm = padded_batch([5, 3], gen)
    lat, lt, _ = padded_batch([2, 2], gen)
    q, qt, _ = padded_batch([3, 3], gen)
    out = net(x, xt, lat, lt, q, qt, input_mask=xm)
    shifted = net(x, xt + shift, lat, lt + shift, q, qt + shift, input_mask=xm)
    torch.testing.assert_close(shifted, out, atol=1e-8, rtol=1e-8)


def test_extra_padding_changes_nothing():
    gen = torch.Generator().manual_seed(0)
    net = model()
    x, xt, xm = (t.float() if t.is_floating_point() else t for t in padded_batch([4, 2], gen))
    lat, lt = torch.randn(2, 3, D), torch.rand(2, 3)
    q, qt = torch.randn(2, 2, D), torch.rand(2, 2)
    out = net(x, xt, lat, lt, q, qt, input_mask=xm)
    x2 = torch.cat([x, 50 * torch.randn(2, 3, D)], 1)
    xt2 = torch.cat([xt, torch.rand(2, 3)], 1)
    xm2 = torch.cat([xm, torch.zeros(2, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(net(x2, xt2, lat, lt, q, qt, input_mask=xm2), out, atol=1e-5, rtol=1e-5)


def test_defaults_follow_poyo():
    net = PerceiverIO(dim=16, depth=1, head_dim=8)
    assert net.rotary.head_dim == 8 and net.rotary.rotate_dim == 4
    assert net.encoder.attention.rotate_value and net.process[0].attention.rotate_value
    assert not net.decoder.attention.rotate_value
    assert net.encoder.ffn.up.out_features == 2 * 4 * 16  # GEGLU x4


def test_mixed_layouts_fail_loudly():
    net = model()
    x, t = torch.randn(4, D), torch.rand(4)
    cu = torch.tensor([0, 4])
    with pytest.raises(ValueError, match="packed layout"):
        net(x, t, x, t, x, t, input_cu_seqlens=cu)
    with pytest.raises(ValueError, match="padded layout"):
        net(x, t, x, t, x, t)
    with pytest.raises(ValueError, match="head_dim"):
        PerceiverIO(dim=8, depth=1, head_dim=4, rotary=RotaryTimeEmbedding(head_dim=8))


@FAST
@given(st.lists(st.integers(0, 6), min_size=1, max_size=3), st.integers(0, 2**16))
def test_indexed_inputs_equal_gathered_inputs(lengths, seed):
    # Inputs as a table of distinct rows + an index give the same outputs as the gathered
    # [B, L, D] tokens, in the padded and the packed layout.
    gen = torch.Generator().manual_seed(seed)
    net = model(seed).double()
    _, xt, xm = padded_batch(lengths, gen)
    table = torch.randn(4, D, generator=gen, dtype=torch.float64)
    index = torch.randint(0, 4, xm.shape, generator=gen)
    b = len(lengths)
    lat, lt = torch.randn(b, 2, D, generator=gen, dtype=torch.float64), torch.rand(b, 2, generator=gen)
    q, qt = torch.randn(b, 3, D, generator=gen, dtype=torch.float64), torch.rand(b, 3, generator=gen)
    gathered = net(table[index], xt, lat, lt, q, qt, input_mask=xm)
    torch.testing.assert_close(net(table, xt, lat, lt, q, qt, input_mask=xm, input_index=index), gathered)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    uniform = torch.arange(b + 1)
    packed = net(table, xt[xm], lat.flatten(0, 1), lt.flatten(), q.flatten(0, 1), qt.flatten(), input_index=index[xm],
                 input_cu_seqlens=cu, latent_cu_seqlens=2 * uniform, query_cu_seqlens=3 * uniform)  # fmt: skip
    torch.testing.assert_close(packed, gathered.flatten(0, 1))
