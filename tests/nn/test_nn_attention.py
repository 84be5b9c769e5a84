import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn import (
    Attention,
    AttentionWeights,
    block_diagonal_mask,
    causal_mask,
    combine_masks,
    local_window_mask,
    pack,
    sequence_ids,
    time_causal_mask,
    unpack,
)

FAST = settings(max_examples=25, deadline=None)


def naive_attention(attn: Attention, x, context, mask):
    """softmax(Q K^T / sqrt(d)) V written out, with mask [B, Lq, Lk] (True = attend)."""
    h, dh = attn.heads, attn.head_dim
    q = attn.q_norm(attn.to_q(x).unflatten(-1, (h, dh)).transpose(1, 2))
    k, v = attn.to_kv(context).chunk(2, dim=-1)
    k = attn.k_norm(k.unflatten(-1, (h, dh)).transpose(1, 2))
    v = v.unflatten(-1, (h, dh)).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / dh**0.5
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    out = scores.softmax(-1) @ v
    return attn.to_out(out.transpose(1, 2).flatten(2))


@FAST
@given(
    st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 2, 4]), st.booleans(),
    st.integers(0, 2**16),
)  # fmt: skip
def test_attention_matches_naive_reference(b, lq, lk, heads, qk_norm, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    attn = Attention(dim=8, heads=heads, context_dim=5, qk_norm=qk_norm).double()
    x = torch.randn(b, lq, 8, generator=gen, dtype=torch.float64)
    ctx = torch.randn(b, lk, 5, generator=gen, dtype=torch.float64)
    key_mask = torch.rand(b, lk, generator=gen) < 0.7
    key_mask[:, 0] = True  # every query has a key, so the reference has no NaN rows
    attn_mask = torch.rand(b, lq, lk, generator=gen) < 0.8
    attn_mask[..., 0] = True
    out = attn(x, ctx, key_mask=key_mask, attn_mask=attn_mask)
    expected = naive_attention(attn, x, ctx, key_mask[:, None, :] & attn_mask)
    torch.testing.assert_close(out, expected)


def test_self_attention_matches_torch_multihead():
    torch.manual_seed(0)
    attn = Attention(dim=12, heads=3)
    mha = torch.nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attn.to_q.weight, attn.to_kv.weight]))
        mha.in_proj_bias.copy_(torch.cat([attn.to_q.bias, attn.to_kv.bias]))
        mha.out_proj.weight.copy_(attn.to_out.weight)
        mha.out_proj.bias.copy_(attn.to_out.bias)
    x = torch.randn(2, 5, 12)
    key_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    expected, _ = mha(x, x, x, key_padding_mask=~key_mask)
    torch.testing.assert_close(attn(x, key_mask=key_mask), expected, atol=1e-5, rtol=1e-5)


@FAST
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**16))
def test_padding_changes_no_valid_output(length, pad, seed):
    torch.manual_seed(seed)
    attn = Attention(dim=8, heads=2)
    x = torch.randn(2, length, 8)
    base = attn(x, key_mask=torch.ones(2, length, dtype=torch.bool))
    padded = torch.cat([x, 100 * torch.randn(2, pad, 8)], dim=1)
    mask = torch.cat([torch.ones(2, length, dtype=torch.bool), torch.zeros(2, pad, dtype=torch.bool)], dim=1)
    out = attn(padded, key_mask=mask)
    torch.testing.assert_close(out[:, :length], base, atol=1e-5, rtol=1e-5)


@FAST
@given(st.integers(2, 7), st.data())
def test_causal_future_token_changes_no_past_output(length, data):
    t = data.draw(st.integers(1, length - 1))
    torch.manual_seed(length)
    attn = Attention(dim=8, heads=2)
    x = torch.randn(1, length, 8)
    y = x.clone()
    y[:, t:] = torch.randn(1, length - t, 8)
    mask = causal_mask(length)
    torch.testing.assert_close(attn(y, attn_mask=mask)[:, :t], attn(x, attn_mask=mask)[:, :t])


def test_causal_mask_offsets_for_longer_keys():
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


@FAST
@given(st.integers(1, 8), st.one_of(st.none(), st.integers(0, 3)), st.one_of(st.none(), st.integers(0, 3)))
def test_local_window_mask_definition(length, backward, forward):
    m = local_window_mask(length, backward=backward, forward=forward)
    for i in range(length):
        for j in range(length):
            ok = (forward is None or j - i <= forward) and (backward is None or i - j <= backward)
            assert bool(m[i, j]) == ok


def test_local_window_attention_ignores_tokens_outside_window():
    torch.manual_seed(0)
    attn = Attention(dim=8, heads=2)
    mask = local_window_mask(8, backward=2, forward=1)
    x = torch.randn(1, 8, 8)
    y = x.clone()
    y[:, 0] = torch.randn(8)  # outside the window of queries 3..7 (backward 2)
    y[:, 7] = torch.randn(8)  # outside the window of queries 0..5 (forward 1)
    torch.testing.assert_close(attn(y, attn_mask=mask)[:, 3:6], attn(x, attn_mask=mask)[:, 3:6])
    with pytest.raises(ValueError, match="backward"):
        local_window_mask(3, backward=-1, forward=None)


def test_empty_sample_gives_zeros_not_nan():
    attn = Attention(dim=4, heads=1)
    x = torch.randn(2, 3, 4, requires_grad=True)
    key_mask = torch.tensor([[True, True, False], [False, False, False]])
    out = attn(x, key_mask=key_mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1], attn.to_out.bias.expand(3, 4))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_time_causal_mask():
    m = time_causal_mask(torch.tensor([[0.1, 0.5]]), torch.tensor([[0.0, 0.1, 0.3, 0.6]]))
    assert m.tolist() == [[[True, True, False, False], [True, True, True, False]]]


@FAST
@given(st.lists(st.integers(0, 4), min_size=1, max_size=4), st.integers(0, 2**16))
def test_pack_unpack_round_trip(lengths, seed):
    gen = torch.Generator().manual_seed(seed)
    max_len = max(lengths)
    mask = torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]
    x = torch.randn(len(lengths), max_len, 3, generator=gen) * mask[..., None]
    flat, cu = pack(x, mask)
    assert cu.tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert sequence_ids(cu).tolist() == [i for i, n in enumerate(lengths) for _ in range(n)]
    back, back_mask = unpack(flat, cu, max_len=max_len)
    torch.testing.assert_close(back, x)
    assert torch.equal(back_mask, mask)


def test_pack_rejects_left_padding_and_bad_cu():
    with pytest.raises(ValueError, match="right-padded"):
        pack(torch.zeros(1, 2, 1), torch.tensor([[False, True]]))
    with pytest.raises(ValueError, match="start at 0"):
        sequence_ids(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="non-decreasing"):
        sequence_ids(torch.tensor([0, 3, 2]))


def test_block_diagonal_attention_equals_per_sample():
    torch.manual_seed(0)
    attn = Attention(dim=8, heads=2)
    a, b = torch.randn(3, 8), torch.randn(2, 8)
    ids = sequence_ids(torch.tensor([0, 3, 5]))
    out = attn(torch.cat([a, b])[None], attn_mask=block_diagonal_mask(ids, ids))[0]
    torch.testing.assert_close(out[:3], attn(a[None])[0])
    torch.testing.assert_close(out[3:], attn(b[None])[0])


def test_combine_masks_shapes_and_types():
    km = torch.tensor([[True, False]])
    am = torch.tensor([[True, True], [False, True]])
    m = combine_masks(km, am)
    assert m.shape == (1, 1, 2, 2)
    assert m[0, 0].tolist() == [[True, False], [False, False]]
    assert combine_masks(None, None) is None
    with pytest.raises(TypeError, match="bool"):
        combine_masks(km.float(), None)


def test_attention_weights_match_torch_multihead():
    torch.manual_seed(0)
    weights = AttentionWeights(dim=6, heads=2)
    mha = torch.nn.MultiheadAttention(6, 2, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight[:12].copy_(weights.to_qk.weight)
        mha.in_proj_bias[:12].copy_(weights.to_qk.bias)
    x = torch.randn(3, 4, 6)
    key_mask = torch.tensor([[True] * 4, [True, True, True, False], [True, False, False, False]])
    _, expected = mha(x, x, x, key_padding_mask=~key_mask, need_weights=True, average_attn_weights=True)
    torch.testing.assert_close(weights(x, key_mask), expected, atol=1e-6, rtol=1e-5)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="head_dim"):
        Attention(dim=7, heads=2)
    assert Attention(dim=7, heads=2, head_dim=4)(torch.randn(1, 3, 7)).shape == (1, 3, 7)


def test_attention_no_bias_option():
    attn = Attention(dim=8, heads=2, bias=False, qk_norm=True)
    assert all(m.bias is None for m in (attn.to_q, attn.to_kv, attn.to_out))
    assert sum(p.numel() for p in attn.q_norm.parameters()) == 4


def _rotary_reference(attn: Attention, x, context, mask, rot, tq, tk):
    """Rotary attention written out per head, from full-width float64 angle tables."""
    from spikefm.nn import apply_rotary, invert_rotary

    h, dh = attn.heads, attn.head_dim
    q = attn.q_norm(attn.to_q(x).unflatten(-1, (h, dh)).transpose(1, 2))  # [B, H, Lq, Dh]
    k, v = attn.to_kv(context).chunk(2, dim=-1)
    k = attn.k_norm(k.unflatten(-1, (h, dh)).transpose(1, 2))
    v = v.unflatten(-1, (h, dh)).transpose(1, 2)
    q, k = apply_rotary(q, rot(tq)[:, None]), apply_rotary(k, rot(tk)[:, None])
    if attn.rotate_value:
        v = apply_rotary(v, rot(tk)[:, None])
    scores = (q @ k.transpose(-1, -2) / dh**0.5).masked_fill(~mask[:, None], float("-inf"))
    out = scores.softmax(-1) @ v  # [B, H, Lq, Dh]
    if attn.rotate_value:
        out = apply_rotary(out, invert_rotary(rot(tq))[:, None])
    return attn.to_out(out.transpose(1, 2).flatten(2))


@FAST
@given(st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_rotary_attention_matches_reference(rotate_value, qk_norm, seed):
    from spikefm.nn import RotaryTimeEmbedding

    torch.manual_seed(seed)
    attn = Attention(dim=16, heads=2, head_dim=8, rotate_value=rotate_value, qk_norm=qk_norm).double()
    rot = RotaryTimeEmbedding(head_dim=8, t_min=1e-3, t_max=2.0)
    x, ctx = torch.randn(2, 3, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64)
    tq, tk = torch.rand(2, 3, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64)
    key_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = attn(x, ctx, key_mask=key_mask, rotary=rot(tq), context_rotary=rot(tk))
    expected = _rotary_reference(attn, x, ctx, key_mask[:, None, :].expand(2, 3, 5), rot, tq, tk)
    torch.testing.assert_close(out, expected)


@FAST
@given(st.lists(st.integers(0, 7), min_size=1, max_size=4), st.booleans(), st.integers(0, 2**16))
def test_indexed_and_packed_keys_equal_padded(lengths, rotate_value, seed):
    from spikefm.nn import RotaryTimeEmbedding

    torch.manual_seed(seed)
    attn = Attention(dim=8, heads=2, head_dim=4, rotate_value=rotate_value).double()
    rot = RotaryTimeEmbedding(head_dim=4, t_min=1e-3)
    b, max_len = len(lengths), max(max(lengths), 1)
    key_mask = torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]  # [B, L]
    table = torch.randn(5, 8, dtype=torch.float64)  # 5 distinct key rows
    index = torch.randint(0, 5, (b, max_len))
    x, tq, tk = torch.randn(b, 3, 8, dtype=torch.float64), torch.rand(b, 3), torch.rand(b, max_len)
    padded = attn(x, table[index], key_mask=key_mask, rotary=rot(tq), context_rotary=rot(tk))
    indexed = attn(x, table, key_mask=key_mask, rotary=rot(tq), context_rotary=rot(tk), context_index=index)
    torch.testing.assert_close(indexed, padded)
    _, cu = pack(index, key_mask)
    packed = attn(x, table, rotary=rot(tq), context_rotary=rot(tk[key_mask]), context_index=index[key_mask],
                  context_cu_seqlens=cu)  # fmt: skip
    torch.testing.assert_close(packed, padded)
    with pytest.raises(ValueError, match="drop key_mask"):
        attn(x, table[index[key_mask]], key_mask=key_mask, context_cu_seqlens=cu)


@pytest.mark.parametrize("rotate_values", [False, True])
def test_fused_gather_rotate_matches_gather_then_rotate_and_gradcheck(rotate_values):
    from spikefm.nn import RotaryTimeEmbedding, apply_rotary
    from spikefm.nn.attention import _GatherRotate

    torch.manual_seed(0)
    rot = RotaryTimeEmbedding(head_dim=8)  # rotates 4 of 8 dims
    rows = torch.randn(5, 4, 8, dtype=torch.float64, requires_grad=True)  # [R, C, Dh], C = 2 heads x (k, v)
    index, lengths = torch.randint(0, 5, (9,)), [4, 0, 5]  # three samples, one without keys
    table = rot(torch.rand(9, dtype=torch.float64), compact=True)  # [N, 2, 2]
    channels = 4 if rotate_values else 2
    pieces = _GatherRotate.apply(rows, index, table, rotate_values, lengths)
    gathered = rows[index]  # [N, C, Dh]
    expected = torch.cat((apply_rotary(gathered[:, :channels], table[:, None]), gathered[:, channels:]), dim=1)
    keys, values = torch.cat(pieces[:3], dim=1), torch.cat(pieces[3:], dim=1)  # [H, N, Dh] each
    torch.testing.assert_close(torch.cat((keys, values)), expected.transpose(0, 1))
    assert [p.shape for p in pieces[:3]] == [(2, n, 8) for n in lengths]
    torch.autograd.gradcheck(lambda r: _GatherRotate.apply(r, index, table, rotate_values, lengths), (rows,))
    some = lambda r: _GatherRotate.apply(r, index, table, rotate_values, lengths)[2:5]  # noqa: E731  (some unused)
    torch.autograd.gradcheck(some, (rows,))


@pytest.mark.parametrize("rotate_values", [False, True])
def test_packed_rotary_attention_gradchecks_and_gives_empty_samples_zeros(rotate_values):
    from spikefm.nn import RotaryTimeEmbedding
    from spikefm.nn.attention import _PackedRotaryAttention

    torch.manual_seed(0)
    rot = RotaryTimeEmbedding(head_dim=8)
    rows = torch.randn(5, 4, 8, dtype=torch.float64, requires_grad=True)  # [R, 2H, Dh]
    q = torch.randn(3, 2, 4, 8, dtype=torch.float64, requires_grad=True)  # [B, H, M, Dh]
    index, lengths = torch.randint(0, 5, (9,)), [4, 0, 5]
    table = rot(torch.rand(9, dtype=torch.float64), compact=True)
    out = _PackedRotaryAttention.apply(q, rows, index, table, rotate_values, lengths)
    assert out.shape == q.shape and not out[1].any()
    torch.autograd.gradcheck(lambda q_, r: _PackedRotaryAttention.apply(q_, r, index, table, rotate_values, lengths),
                             (q, rows))  # fmt: skip


def test_packed_cpu_attention_keeps_no_key_tensor_unless_attention_dropout_needs_them(monkeypatch):
    from spikefm.nn import RotaryTimeEmbedding
    from spikefm.nn import attention as attention_module

    calls = []
    original = attention_module._GatherRotate.apply
    monkeypatch.setattr(attention_module._GatherRotate, "apply", lambda *a: calls.append(1) or original(*a))
    torch.manual_seed(0)
    rot = RotaryTimeEmbedding(head_dim=4, t_min=1e-3)
    table, index, cu = torch.randn(4, 8), torch.randint(0, 4, (7,)), torch.tensor([0, 3, 7])
    x, tq, tk = torch.randn(2, 2, 8), torch.rand(2, 2), torch.rand(7)
    for dropout, training, gathered in ((0.0, True, False), (0.5, False, False), (0.5, True, True)):
        attn = Attention(dim=8, heads=2, head_dim=4, rotate_value=True, dropout=dropout).train(training)
        calls.clear()
        attn(x, table, rotary=rot(tq), context_rotary=rot(tk), context_index=index, context_cu_seqlens=cu).sum().backward()
        assert bool(calls) == gathered, (dropout, training)


def test_packed_keys_give_the_padded_gradients_and_compute_no_padded_key():
    from spikefm.nn import RotaryTimeEmbedding

    torch.manual_seed(0)
    attn = Attention(dim=8, heads=2, head_dim=4, rotate_value=True).double()
    rot = RotaryTimeEmbedding(head_dim=4, t_min=1e-3)
    lengths = torch.tensor([5, 0, 2])
    key_mask = torch.arange(5)[None, :] < lengths[:, None]
    table = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 4, (3, 5))
    x, tq, tk = torch.randn(3, 2, 8, dtype=torch.float64), torch.rand(3, 2), torch.rand(3, 5)
    _, cu = pack(index, key_mask)
    grads = []
    for packed in (False, True):
        attn.zero_grad()
        table.grad = None
        if packed:
            out = attn(x, table, rotary=rot(tq), context_rotary=rot(tk[key_mask]), context_index=index[key_mask],
                       context_cu_seqlens=cu)  # fmt: skip
        else:
            out = attn(x, table, key_mask=key_mask, rotary=rot(tq), context_rotary=rot(tk), context_index=index)
        (out**2).sum().backward()
        grads.append([table.grad.clone()] + [p.grad.clone() for p in attn.parameters()])
    for packed_grad, padded_grad in zip(*grads):
        torch.testing.assert_close(packed_grad, padded_grad)
    with pytest.raises(ValueError, match="does not match"):
        attn(x, table, context_index=index[key_mask][:-1], context_cu_seqlens=cu)
