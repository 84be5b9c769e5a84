"""Cutting tokens into time chunks (nn/chunking): chunk index, the per-chunk grid, each token's sample."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn.chunking import bin_centres, chunk_grid, chunk_index, token_samples
from spikefm.tokenize.base import Tokens, collate


def test_chunk_grid_places_each_token_in_its_chunk_with_chunk_relative_time():
    tokens = torch.arange(5, dtype=torch.float32)[:, None].repeat(1, 2)  # token i = [i, i]
    times = torch.tensor([0.01, 0.06, 0.02, 0.149, 0.03])
    sample = torch.tensor([0, 0, 1, 1, 1])
    grid, rel, mask = chunk_grid(tokens, times, sample, n_rows=2 * 3, n_chunks=3, chunk=0.05)
    assert grid.shape == (6, 2, 2) and mask.sum() == 5
    # sample 0: chunk 0 holds token 0, chunk 1 token 1; sample 1: chunk 0 tokens 2 and 4, chunk 2 token 3
    assert mask.tolist() == [[True, False], [True, False], [False, False], [True, True], [False, False], [True, False]]
    assert grid[3, :, 0].tolist() == [2.0, 4.0] and grid[5, 0, 0] == 3.0
    np.testing.assert_allclose(rel[mask].numpy(), [0.01, 0.01, 0.02, 0.03, 0.049], atol=1e-6)


def test_chunk_index_snaps_float32_boundaries_up():
    times = torch.tensor([0.35, 0.3499, 0.0, 0.05], dtype=torch.float32)  # float32(0.35) < 0.35
    assert chunk_index(times, 0.05).tolist() == [7, 6, 0, 1]


def _window(n: int, session: str) -> Tokens:
    return Tokens(values=np.zeros((n, 0), np.float32), timestamps=np.linspace(0.0, 0.9, n), unit_index=np.zeros(n, int),
                  token_type=np.zeros(n, int), mask=np.ones(n, bool), unit_keys=(f"{session}/0",), session=session,
                  duration=1.0)  # fmt: skip


def test_token_samples_name_each_tokens_window_in_padded_and_packed_batches():
    samples = [_window(2, "a"), _window(3, "b")]
    padded, packed = collate(samples, pack=False), collate(samples, pack=True)
    rows = token_samples(padded.mask, padded.sample_index)  # [B, L]: the row of every slot, padding too
    assert rows.tolist() == [[0, 0, 0], [1, 1, 1]]
    flat = token_samples(packed.mask, packed.sample_index)  # [N]
    assert flat.tolist() == [0, 0, 1, 1, 1]
    assert rows[padded.mask].tolist() == flat.tolist()  # the same window for every real token


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 0.0499, allow_nan=False), min_size=1, max_size=20), st.sampled_from([1, 2, 5, 10]))
def test_bin_centres_keep_only_each_times_bin(times, n_bins):
    bin_size = 0.05 / n_bins
    relative = torch.tensor(times, dtype=torch.float64)
    centres = bin_centres(relative, bin_size, 0.05)
    index = torch.floor(relative / bin_size + 1e-4).clamp(max=n_bins - 1)
    torch.testing.assert_close(centres, (index + 0.5) * bin_size)  # the centre of the bin each time is in
    torch.testing.assert_close(bin_centres(centres, bin_size, 0.05), centres)  # a centre stays put
    assert bool(((centres > 0) & (centres < 0.05)).all())


def test_bin_centres_need_a_bin_that_divides_the_chunk():
    with pytest.raises(ValueError, match="must divide"):
        bin_centres(torch.zeros(2), 0.03, 0.05)
