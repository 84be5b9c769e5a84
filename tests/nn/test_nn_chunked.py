"""The chunked pipeline's pieces (nn/chunked): read-out windows, chunk geometry, streaming tables and state."""

import math

import pytest
import torch

from spikefm.nn import RotaryTimeEmbedding
from spikefm.nn.attention import Attention
from spikefm.nn.chunked import (
    ChunkStreamState, chunk_ends, context_mask, count_chunks, history_slot_ends, push_history, stream_rotary,
)  # fmt: skip
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
