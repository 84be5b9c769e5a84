"""The chunked pipeline's pieces (nn/chunked): blocks, read-out windows, chunk geometry, causality, streaming
tables and state."""

import math

import pytest
import torch

from spikefm.nn import RotaryTimeEmbedding
from spikefm.nn.attention import Attention
from spikefm.nn.chunked import (
    ChunkStreamState, chunk_blocks, chunk_ends, context_mask, count_chunks, encode_chunks, history_slot_ends,
    push_history, query_context_mask, read_chunks, stream_rotary,
)  # fmt: skip
from spikefm.nn.chunking import chunk_grid, chunk_index
from spikefm.nn.recurrent import make_core
from spikefm.nn.transformer import CrossAttentionBlock, make_ffn


def test_context_mask_reads_own_and_earlier_chunks_and_shift_hides_the_own_chunk():
    own = context_mask(torch.arange(4), 4, 2)
    assert own.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    forward = context_mask(torch.arange(4), 4, 2, shift=1)
    assert forward.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]]
    assert context_mask(torch.tensor([[3, 0]]), 4, 1).shape == (1, 2, 4)


def test_chunk_geometry():
    assert count_chunks(1.0, 0.05) == 20 and count_chunks(1.0 + 1e-9, 0.05) == 20 and count_chunks(0.0, 0.05) == 1
    assert count_chunks(1.01, 0.05) == 21
    torch.testing.assert_close(chunk_ends(3, 0.25), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    assert history_slot_ends(3, 0.5).tolist() == [-0.5, 0.0, 0.5]  # the newest slot ends one chunk in


def test_stream_rotary_equals_the_module_for_float32_times():
    rotary = RotaryTimeEmbedding(head_dim=16, t_min=1e-4, t_max=10.0)
    times = torch.rand(50, dtype=torch.float64) * 0.05
    omega = torch.tensor(rotary.omega, dtype=torch.float64)
    torch.testing.assert_close(stream_rotary(times, omega), rotary(times.float()), atol=1e-6, rtol=1e-6)


@pytest.fixture
def decoder():
    attention = Attention(dim=8, heads=2, head_dim=4, context_dim=6, rotate_value=True)
    return CrossAttentionBlock(attention=attention, ffn=make_ffn("geglu", dim=8, hidden_dim=16), context_dim=6)


def test_history_keeps_the_last_context_outputs_and_marks_real_slots(decoder):
    core, _ = make_core("gru", input_dim=4, hidden_dim=6, layers=1, dropout=0.0, state_dim=4, expand=2)
    state = ChunkStreamState.initial(core, decoder, 3, torch.zeros(1))
    assert state.history.shape == (3, 16) and state.filled == 0 and not state.history.any()
    outputs = [torch.randn(1, 6) for _ in range(4)]
    history, filled = state.history, state.filled
    for k, y in enumerate(outputs):
        history, filled, visible = push_history(decoder, history, y, filled)
        assert filled == min(k + 1, 3) and visible.tolist() == [[i >= 3 - filled for i in range(3)]]
    expected = decoder.attention.to_kv(decoder.context_norm(torch.cat(outputs[1:])))
    torch.testing.assert_close(history, expected)
    assert math.isclose(float(visible.sum()), 3)


def test_query_context_mask_reads_the_query_times_chunk_and_the_ones_before():
    times = torch.tensor([[0.0, 0.12, 0.35, 0.49, 0.7]], dtype=torch.float32)  # float32(0.35) < 0.35 snaps up
    mask = query_context_mask(times, 0.05, 10, 3)  # [1, Q, C]
    assert mask.shape == (1, 5, 10)
    assert [row.nonzero().flatten().tolist() for row in mask[0]] == [[0], [0, 1, 2], [5, 6, 7], [7, 8, 9], [7, 8, 9]]
    torch.testing.assert_close(mask, context_mask(chunk_index(times, 0.05).clamp(0, 9), 10, 3))


def test_chunk_blocks_are_the_encoder_then_the_decoder_with_stable_parameter_names():
    torch.manual_seed(0)
    encoder, decoder = chunk_blocks(dim=8, heads=2, head_dim=4, core_dim=6, dropout=0.1)
    torch.manual_seed(0)  # built by hand in the same order: same weights, same state-dict names
    by_hand = [
        CrossAttentionBlock(attention=Attention(dim=8, heads=2, head_dim=4, context_dim=width, rotate_value=True),
                            ffn=make_ffn("geglu", dim=8, hidden_dim=32, dropout=0.1), context_dim=width)
        for width in (8, 6)
    ]  # fmt: skip
    for block, reference in zip((encoder, decoder), by_hand):
        assert block.attention.rotate_value and block.attention.heads == 2 and block.attention.head_dim == 4
        state, expected = block.state_dict(), reference.state_dict()
        assert list(state) == list(expected)
        for name in expected:
            torch.testing.assert_close(state[name], expected[name], atol=0, rtol=0)
    assert encoder.attention.to_kv.in_features == 8 and decoder.attention.to_kv.in_features == 6
    out = decoder(torch.randn(2, 3, 8), torch.randn(2, 4, 6))  # queries [B, Q, D] read core outputs [B, C, H]
    assert out.shape == (2, 3, 8)


def test_encoded_chunks_and_read_out_are_causal_in_chunks(decoder):
    # A chunk's latents read only its own tokens; a query reads only its window of core outputs, so
    # changing a later chunk's tokens changes nothing earlier.
    torch.manual_seed(0)
    encoder, _ = chunk_blocks(dim=8, heads=2, head_dim=4, core_dim=6, dropout=0.0)
    rotary = RotaryTimeEmbedding(head_dim=4, t_min=1e-3, t_max=1.0)
    core, _ = make_core("gru", input_dim=2 * 8, hidden_dim=6, layers=1, dropout=0.0, state_dim=4, expand=2)
    latents = torch.randn(2, 8)  # [K, D]
    tokens, times = torch.randn(12, 8), torch.rand(12) * 0.4  # one window, 4 chunks of 0.1 s

    def run(tokens: torch.Tensor) -> torch.Tensor:
        grid = chunk_grid(tokens, times, torch.zeros(12, dtype=torch.long), 4, 4, 0.1)
        encoded = encode_chunks(encoder.eval(), latents, rotary, *grid, 0.1)  # [C, K * D]
        assert encoded.shape == (4, 16)
        core_out, _ = core(encoded[None])  # [1, C, H]
        query_times = torch.arange(8)[None] * 0.05  # [1, Q]
        mask = query_context_mask(query_times, 0.1, 4, 2)
        return read_chunks(decoder.eval(), rotary, torch.zeros(1, 8, 8), query_times, core_out,
                           chunk_ends(4, 0.1)[None], mask)[0]  # [Q, D]  # fmt: skip

    with torch.no_grad():
        base = run(tokens)
        late = chunk_index(times, 0.1) == 3
        changed = run(torch.where(late[:, None], torch.randn(12, 8), tokens))
    torch.testing.assert_close(changed[:6], base[:6])  # queries of chunks 0-2
    assert not torch.allclose(changed[6:], base[6:])
