"""Cutting a stream of tokens into fixed-length time chunks (POSSM, unified).

Offline, a window's tokens are scattered into one padded row per (sample, chunk) so one
attention call encodes every chunk; streaming, each chunk arrives on its own. Both must put a
token into the same chunk, so both use :func:`chunk_index`.

Shape legend: n tokens, B samples, L tokens per padded sample, N packed tokens, C chunks, S most
tokens in a chunk, D width.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CHUNK_SNAP", "chunk_index", "chunk_grid", "token_samples", "bins_per_chunk", "bin_centres"]

CHUNK_SNAP = 1e-4  # chunks; a time this close below a boundary belongs to the next chunk


def chunk_index(times: Tensor, chunk: float) -> Tensor:
    """Chunk of each time: ``floor(t / chunk)``, snapping times within ``CHUNK_SNAP`` chunks below a
    boundary up (float32 timestamps of boundary queries round down)."""
    return torch.floor(times.double() / chunk + CHUNK_SNAP).long()


def token_samples(mask: Tensor, sample_index: Tensor | None) -> Tensor:
    """long, shaped as ``mask``: the sample of every token slot, the ``sample`` :func:`chunk_grid` takes.

    Args:
        mask: the batch's token mask, padded [B, L] or packed [N].
        sample_index: long [N] the sample of each packed token, or None for a padded batch.
    """
    if sample_index is not None:
        return sample_index  # [N]
    return torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)  # [B, L]


def chunk_grid(
    tokens: Tensor, times: Tensor, sample: Tensor, n_rows: int, n_chunks: int, chunk: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Scatter flat tokens into one padded row per (sample, chunk).

    Args:
        tokens: [n, D] valid tokens. times: [n] window-relative seconds. sample: long [n].
        n_rows: B * C rows. n_chunks: C. chunk: seconds.

    Returns:
        tokens [B * C, S, D], chunk-relative times float64 [B * C, S], mask [B * C, S]
        (row ``b * C + c`` is chunk ``c`` of sample ``b``; ``S`` = most tokens in a chunk, >= 1).
    """
    index = chunk_index(times, chunk).clamp(0, n_chunks - 1)  # [n]
    relative = times.double() - index.double() * chunk  # [n] seconds into the chunk
    row = sample * n_chunks + index  # [n]
    order = torch.argsort(row, stable=True)
    row = row[order]
    counts = torch.bincount(row, minlength=n_rows)  # [B * C]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(row.shape[0], device=row.device) - starts[row]  # position inside its row
    width = max(1, int(counts.max())) if row.numel() else 1
    grid = tokens.new_zeros(n_rows, width, tokens.shape[-1])
    grid[row, slot] = tokens[order]
    grid_times = torch.zeros(n_rows, width, dtype=torch.float64, device=tokens.device)
    grid_times[row, slot] = relative[order]
    mask = torch.zeros(n_rows, width, dtype=torch.bool, device=tokens.device)
    mask[row, slot] = True
    return grid, grid_times, mask


def bins_per_chunk(bin_size: float, chunk: float) -> int:
    """How many ``bin_size`` bins make a chunk; raises unless ``bin_size`` divides ``chunk``."""
    n_bins = round(chunk / bin_size)
    if n_bins < 1 or abs(n_bins * bin_size - chunk) > 1e-9 * chunk:
        raise ValueError(f"bin_size {bin_size} s must divide the chunk {chunk} s")
    return n_bins


def bin_centres(relative: Tensor, bin_size: float, chunk: float) -> Tensor:
    """Chunk-relative times moved to the centre of their ``bin_size`` bin: what a binned input keeps
    of a spike's time (its bin), in the tokens' format. ``bin_size`` must divide ``chunk``.

    Shapes:
        relative [...] seconds into the chunk -> [...] same dtype
    """
    n_bins = bins_per_chunk(bin_size, chunk)
    index = torch.floor(relative.double() / bin_size + CHUNK_SNAP).clamp(0, n_bins - 1)
    return ((index + 0.5) * bin_size).to(relative.dtype)
