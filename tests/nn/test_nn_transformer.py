import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn import (
    GatedMLP,
    RotaryTimeEmbedding,
    SpatioTemporalBlock,
    TransformerEncoder,
    causal_mask,
    local_window_mask,
    make_ffn,
    make_norm,
)

FAST = settings(max_examples=20, deadline=None)

VARIANTS = [
    dict(ffn="gelu", norm="layernorm"),  # NDT1 / NDT2
    dict(ffn="swiglu", norm="rmsnorm", qk_norm=True, bias=False),  # NDT3
    dict(ffn="geglu", norm="layernorm"),  # POYO
]


def encoder(seed=0, **kw):
    torch.manual_seed(seed)
    return TransformerEncoder(dim=8, depth=2, heads=2, ffn_dim=16, **kw).eval()


@pytest.mark.parametrize("kw", VARIANTS)
def test_encoder_padding_invariance(kw):
    enc = encoder(**kw)
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = enc(x, key_mask=mask)
    y = torch.cat([x, torch.randn(2, 3, 8)], 1)
    ymask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(enc(y, key_mask=ymask)[:, :5][mask], out[mask], atol=1e-5, rtol=1e-5)
    # the second sample, cut to its own 3 tokens, gives the same result as when padded
    torch.testing.assert_close(enc(x[1:, :3])[0], out[1, :3], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", VARIANTS)
def test_encoder_causal(kw):
    enc = encoder(**kw)
    x = torch.randn(1, 6, 8)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 8)
    m = causal_mask(6)
    torch.testing.assert_close(enc(y, attn_mask=m)[:, :4], enc(x, attn_mask=m)[:, :4])


def test_encoder_local_window_limits_receptive_field():
    enc = encoder()
    m = local_window_mask(8, backward=1, forward=0)
    x = torch.randn(1, 8, 8)
    y = x.clone()
    y[:, 0] = torch.randn(8)
    # two layers, one step back each: step 0 reaches steps 0..2 only
    out_x, out_y = enc(x, attn_mask=m), enc(y, attn_mask=m)
    torch.testing.assert_close(out_y[:, 3:], out_x[:, 3:])
    assert not torch.allclose(out_y[:, 2], out_x[:, 2])


@FAST
@given(st.permutations(list(range(5))), st.integers(0, 2**16))
def test_neuron_tokens_permutation_equivariant(perm, seed):
    enc = encoder(seed)
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, False, True, True, False]])
    perm = torch.tensor(perm)
    out = enc(x, key_mask=mask)
    out_perm = enc(x[:, perm], key_mask=mask[:, perm])
    torch.testing.assert_close(out_perm[mask[:, perm]], out[:, perm][mask[:, perm]], atol=1e-5, rtol=1e-5)


@FAST
@given(st.floats(-50, 50), st.integers(0, 2**16))
def test_rotary_encoder_time_shift_invariant(shift, seed):
    torch.manual_seed(seed)
    enc = TransformerEncoder(
        dim=8, depth=2, heads=2, rotary=RotaryTimeEmbedding(head_dim=4, t_min=1e-3), rotate_value=True
    ).double()
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    t = torch.rand(2, 4, dtype=torch.float64)
    torch.testing.assert_close(enc(x, times=t + shift), enc(x, times=t), atol=1e-8, rtol=1e-8)


def test_encoder_rotary_and_times_must_agree():
    with pytest.raises(ValueError, match="times"):
        encoder()(torch.randn(1, 2, 8), times=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="rotary"):
        TransformerEncoder(dim=8, depth=1, heads=2, rotate_value=True)


def test_ndt3_style_has_no_biases():
    enc = encoder(ffn="swiglu", norm="rmsnorm", qk_norm=True, bias=False)
    names = [n for n, _ in enc.named_parameters()]
    assert not any(n.endswith("bias") for n in names)
    assert any("q_norm" in n for n in names)


def test_gated_mlp_is_swiglu():
    torch.manual_seed(0)
    ffn = make_ffn("swiglu", dim=4, hidden_dim=6)
    assert isinstance(ffn, GatedMLP)
    x = torch.randn(3, 4)
    value, gate = F.linear(x, ffn.up.weight, ffn.up.bias).chunk(2, -1)
    torch.testing.assert_close(ffn(x), F.linear(F.silu(gate) * value, ffn.down.weight, ffn.down.bias))


@pytest.mark.parametrize("kind", ["swiglu", "geglu"])
def test_gated_mlp_inference_matches_training_path(kind):
    torch.manual_seed(0)
    ffn = make_ffn(kind, dim=4, hidden_dim=6).eval()
    x = torch.randn(2, 3, 4)
    with torch.inference_mode():
        gated_in_place = ffn(x)
    assert torch.equal(gated_in_place, ffn(x))


def test_unknown_parts_fail_loudly():
    with pytest.raises(ValueError, match="choose one of"):
        make_ffn("tanh", dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="choose one of"):
        make_norm("batchnorm", 4)


def stndt_reference(block: SpatioTemporalBlock, x, spatial):
    """STNDT's layer (PRE_NORM, eval) in its [T, B, N] layout with torch.nn.MultiheadAttention."""
    n, t = x.shape[2], x.shape[1]
    heads = block.temporal.attention.heads
    att = block.temporal.attention
    t_mha = torch.nn.MultiheadAttention(n, heads)
    s_mha = torch.nn.MultiheadAttention(t, heads)
    with torch.no_grad():
        t_mha.in_proj_weight.copy_(torch.cat([att.to_q.weight, att.to_kv.weight]))
        t_mha.in_proj_bias.copy_(torch.cat([att.to_q.bias, att.to_kv.bias]))
        t_mha.out_proj.weight.copy_(att.to_out.weight)
        t_mha.out_proj.bias.copy_(att.to_out.bias)
        s_mha.in_proj_weight[: 2 * t].copy_(block.spatial_weights.to_qk.weight)
        s_mha.in_proj_bias[: 2 * t].copy_(block.spatial_weights.to_qk.bias)
    src = x.transpose(0, 1)  # [T, B, N]
    spatial_src = spatial.transpose(0, 1)  # [N, B, T]
    ffn_t, ffn_s = block.temporal.ffn, block.ffn

    def ff(f, v):
        return f.down(F.relu(f.up(v)))

    src = src + t_mha(*(block.temporal.attn_norm(src),) * 3)[0]
    src = src + ff(ffn_t, block.temporal.ffn_norm(src))
    s = block.spatial_norm(spatial_src)
    _, weights = s_mha(s, s, s)  # [B, N, N], heads averaged
    ts_out = torch.bmm(weights, block.mix_norm(src).permute(1, 2, 0)).permute(2, 0, 1)  # [T, B, N]
    ts_out = src + ts_out
    ts_out = ts_out + ff(ffn_s, block.ffn_norm(ts_out))
    return ts_out.transpose(0, 1)  # [B, T, N]


def test_spatiotemporal_block_matches_stndt_reference():
    torch.manual_seed(0)
    block = SpatioTemporalBlock(dim=6, length=4, heads=2, ffn_dim=10).eval()
    x = torch.randn(3, 4, 6)
    spatial = torch.randn(3, 6, 4)
    torch.testing.assert_close(block(x, spatial), stndt_reference(block, x, spatial), atol=1e-5, rtol=1e-5)
    # later layers read their own output as spatial tokens
    torch.testing.assert_close(block(x), stndt_reference(block, x, x.transpose(1, 2)), atol=1e-5, rtol=1e-5)
    blocks = [block, block]
    out = SpatioTemporalBlock.stack_forward(blocks, x, spatial)
    torch.testing.assert_close(out, block(block(x, spatial)))


def test_spatiotemporal_block_checks_length():
    block = SpatioTemporalBlock(dim=4, length=4, heads=2, ffn_dim=8)
    with pytest.raises(ValueError, match="bins wide"):
        block(torch.randn(1, 5, 4))


def test_cached_context_kv_and_rotated_queries_reproduce_the_cross_attention_block():
    # The streaming path (context_kv cached, rotated_queries once, attend_projected per chunk) must
    # equal the block's forward (POSSM and unified stream with it).
    from spikefm.nn import Attention, CrossAttentionBlock, attend_projected, context_kv, rotated_queries

    torch.manual_seed(0)
    attention = Attention(dim=8, heads=2, head_dim=4, context_dim=6, rotate_value=True)
    block = CrossAttentionBlock(attention=attention, ffn=make_ffn("geglu", dim=8, hidden_dim=16), context_dim=6).eval()
    rotary = RotaryTimeEmbedding(head_dim=4, t_min=1e-3, t_max=1.0)
    x, context = torch.randn(3, 8), torch.randn(5, 6)  # [L, D], [n, Dc]
    x_times, context_times = torch.rand(3), torch.rand(5)
    kv = context_kv(block, context)
    assert kv.shape == (5, 2 * 2 * 4)
    q, unrotary = rotated_queries(block, x, rotary(x_times))
    with torch.no_grad():
        tables = {"rotary": rotary(x_times)[None], "context_rotary": rotary(context_times)[None]}
        expected = block(x[None], context[None], **tables)  # [1, L, D]
        cached = attend_projected(block, x, q, kv, rotary(context_times), unrotary, mask=None)
    torch.testing.assert_close(cached, expected[0], atol=1e-6, rtol=1e-6)
