"""Binned tokenizers: one token per time bin (NDT1, STNDT, MtM, NEDS) and NDT2/NDT3 patches.

Both count spikes with :meth:`Recording.bin` on the window (half-open bins
``[i * bin_size, (i + 1) * bin_size)`` from the window start; the last bin is partial when the
window is not a whole number of bins), so counts match the data layer exactly.

>>> import numpy as np
>>> from spikefm.data.recording import Recording, SpikeTrains, Units
>>> rec = Recording(spikes=SpikeTrains(np.array([0.01, 0.03, 0.05]), np.array([0, 1, 1])),
...                 units=Units(ids=np.array(["a", "b"])), start=0.0, end=1.0)
>>> tokens = BinnedTokenizer(BinnedConfig(bin_size=0.02, query="none"))(rec.window(0.0, 0.06))
>>> tokens.values.tolist()
[[1, 0], [0, 1], [0, 1]]
>>> int(BinnedTokenizer.to_counts(tokens).sum())
3
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikefm.data.recording import Window
from spikefm.tokenize.base import QueryConfig, TokenType, Tokens, cached_unit_keys, make_queries, unit_extras

__all__ = ["BinnedConfig", "BinnedTokenizer", "PatchConfig", "PatchTokenizer", "bin_window"]


def bin_window(window: Window, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts int64 [T, U] of the window (``Recording.bin`` semantics) and bin edges float64 [T + 1]."""
    recording = window.recording
    # A spike just before the window's end in absolute time can land exactly on the relative end
    # after subtracting t0 (float rounding); it is the window's, so bin up to just past the end
    # (Recording.bin puts it in the last bin).
    counts = recording.bin(bin_size, recording.start, np.nextafter(recording.end, np.inf))
    edges = np.minimum(recording.start + np.arange(counts.shape[0] + 1) * bin_size, recording.end)
    edges[-1] = recording.end
    return counts, edges


def _check_count_options(owner: str, bin_size: float, clip: int | None, n_classes: int | None) -> None:
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise ValueError(f"{owner}.bin_size must be a positive number of seconds, got {bin_size}")
    if clip is not None and (int(clip) != clip or clip < 1):
        raise ValueError(f"{owner}.clip must be a positive integer count or None, got {clip}")
    if n_classes is not None and (int(n_classes) != n_classes or n_classes < 2):
        raise ValueError(f"{owner}.n_classes must be an integer >= 2 or None, got {n_classes}")


def _count_extras(counts: np.ndarray, n_classes: int | None) -> dict[str, np.ndarray]:
    """NDT3-style count classes: ``min(count, n_classes - 1)`` (the last class means 'this or more')."""
    return {} if n_classes is None else {"count_class": np.minimum(counts, n_classes - 1)}


# ---------------------------------------------------------------------------- population vector
@dataclass(frozen=True, kw_only=True)
class BinnedConfig(QueryConfig):
    """Config of :class:`BinnedTokenizer`.

    Args:
        bin_size: bin width in seconds.
        clip: if set, counts above it are clipped to it (``values`` only).
        n_classes: if set, adds ``extras["count_class"]`` = ``min(count, n_classes - 1)`` (NDT3's
            22-class count cross-entropy uses ``n_classes=22``).
        query: defaults to ``"bins"`` (one behaviour query at each bin centre).
    """

    query: str = "bins"
    bin_size: float = 0.02
    clip: int | None = None
    n_classes: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count_options(type(self).__name__, self.bin_size, self.clip, self.n_classes)


class BinnedTokenizer:
    """One token per time bin holding the whole population count vector (NDT1 / STNDT / MtM).

    Tokens: ``values`` int64 [T, U] counts, ``timestamps`` the bin centres, ``unit_index`` -1
    (a token spans all units), ``token_type`` SPIKE.

    What it loses: spike timing within a bin (``bin_size`` of temporal precision) and, with
    ``clip``, counts above the clip. Sparsity cost: every (bin, unit) entry is stored, so
    at 15 Hz and 20 ms bins about 74% of entries are zeros.
    """

    def __init__(self, config: BinnedConfig | None = None):
        self.config = config or BinnedConfig()

    def __call__(self, window: Window) -> Tokens:
        counts, edges = bin_window(window, self.config.bin_size)
        centers = 0.5 * (edges[:-1] + edges[1:])
        values = counts if self.config.clip is None else np.minimum(counts, self.config.clip)
        queries, targets = make_queries(window, self.config, centers)
        n = counts.shape[0]
        return Tokens(
            values=values,
            timestamps=centers,
            unit_index=np.full(n, -1, np.int64),
            token_type=np.full(n, TokenType.SPIKE, np.int64),
            mask=np.ones(n, bool),
            unit_keys=cached_unit_keys(window.recording),
            session=window.session,
            duration=window.duration,
            query_timestamps=queries,
            targets=targets,
            extras=_count_extras(counts, self.config.n_classes),
            unit_extras=unit_extras(window),
        )

    @staticmethod
    def to_counts(tokens: Tokens) -> np.ndarray:
        """The count matrix int64 [T, U] back from binned tokens (exact unless ``clip`` cut it)."""
        return np.asarray(tokens.values[tokens.mask], np.int64)


# ---------------------------------------------------------------------------- NDT2 patches
@dataclass(frozen=True, kw_only=True)
class PatchConfig(QueryConfig):
    """Config of :class:`PatchTokenizer`.

    Args:
        bin_size: bin width in seconds (NDT2: 20 ms; 5 ms for NLB).
        neurons_per_patch: units per patch (NDT2 / NDT3: 32).
        bins_per_patch: bins per patch (NDT2: 1).
        clip: clip counts in ``values`` (NDT2 embeds counts with ``Embedding(21, ...)``: ``clip=20``).
        n_classes: adds ``extras["count_class"]`` (NDT3: 22 classes).
    """

    query: str = "bins"
    bin_size: float = 0.02
    neurons_per_patch: int = 32
    bins_per_patch: int = 1
    clip: int | None = None
    n_classes: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count_options(type(self).__name__, self.bin_size, self.clip, self.n_classes)
        for name in ("neurons_per_patch", "bins_per_patch"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"PatchConfig.{name} must be a positive integer, got {value}")


class PatchTokenizer:
    """NDT2 / NDT3 space-time patches: ``bins_per_patch`` bins x ``neurons_per_patch`` units.

    Units are split in order into ``G = ceil(U / neurons_per_patch)`` groups (the last one
    zero-padded) and bins into ``ceil(T / bins_per_patch)`` steps (the last one zero-padded).
    Tokens are time-major (token ``t * G + g``). ``values`` int64 [L, bins_per_patch *
    neurons_per_patch] (row-major over (bin, unit)); ``extras``: ``patch_time`` / ``patch_group``
    int64 [L] (the patch's position) and ``channel_mask`` bool [L, P] (False on padding).
    ``unit_index`` is -1 (a patch spans a group of units; the group is ``patch_group``).

    What it loses: spike timing within a bin, the counts above ``clip``, and unit identity inside
    a patch (a group's units share one token, so the order of units matters). Sparsity cost: all
    (bin, unit) entries are stored, plus padding up to whole patches.
    """

    def __init__(self, config: PatchConfig | None = None):
        self.config = config or PatchConfig()

    def __call__(self, window: Window) -> Tokens:
        cfg = self.config
        counts, edges = bin_window(window, cfg.bin_size)
        n_bins, n_units = counts.shape
        n_steps = -(-n_bins // cfg.bins_per_patch)
        n_groups = -(-n_units // cfg.neurons_per_patch)
        patches = self._patchify(counts, n_steps, n_groups)
        real = self._patchify(np.ones_like(counts, bool), n_steps, n_groups)
        values = patches if cfg.clip is None else np.minimum(patches, cfg.clip)
        step_edges = edges[np.minimum(np.arange(n_steps + 1) * cfg.bins_per_patch, n_bins)]
        step_centers = 0.5 * (step_edges[:-1] + step_edges[1:])
        patch_time = np.repeat(np.arange(n_steps), n_groups)
        queries, targets = make_queries(window, cfg, 0.5 * (edges[:-1] + edges[1:]))
        n = patch_time.shape[0]
        return Tokens(
            values=values,
            timestamps=step_centers[patch_time],
            unit_index=np.full(n, -1, np.int64),
            token_type=np.full(n, TokenType.SPIKE, np.int64),
            mask=np.ones(n, bool),
            unit_keys=cached_unit_keys(window.recording),
            session=window.session,
            duration=window.duration,
            query_timestamps=queries,
            targets=targets,
            extras={
                "patch_time": patch_time,
                "patch_group": np.tile(np.arange(n_groups), n_steps),
                "channel_mask": real,
                **_count_extras(patches, cfg.n_classes),
            },
            unit_extras=unit_extras(window),
        )

    def _patchify(self, grid: np.ndarray, n_steps: int, n_groups: int) -> np.ndarray:
        bpp, npp = self.config.bins_per_patch, self.config.neurons_per_patch
        padded = np.zeros((n_steps * bpp, n_groups * npp), grid.dtype)  # [T', U']
        padded[: grid.shape[0], : grid.shape[1]] = grid
        blocks = padded.reshape(n_steps, bpp, n_groups, npp).transpose(0, 2, 1, 3)  # [steps, G, bpp, npp]
        return blocks.reshape(n_steps * n_groups, bpp * npp)  # [L, P]

    def to_counts(self, tokens: Tokens) -> np.ndarray:
        """The count matrix int64 [T, U] back from patch tokens (exact unless ``clip`` cut it)."""
        bpp, npp = self.config.bins_per_patch, self.config.neurons_per_patch
        patch_time, patch_group = tokens.extras["patch_time"], tokens.extras["patch_group"]
        n_steps = int(patch_time.max()) + 1 if len(tokens) else 0
        n_groups = int(patch_group.max()) + 1 if len(tokens) else 0
        grid = np.zeros((n_steps, n_groups, bpp, npp), np.int64)  # [steps, G, bpp, npp]
        grid[patch_time, patch_group] = tokens.values.reshape(-1, bpp, npp)
        real = np.zeros((n_steps, n_groups, bpp, npp), bool)
        real[patch_time, patch_group] = tokens.extras["channel_mask"].reshape(-1, bpp, npp)
        grid = grid.transpose(0, 2, 1, 3).reshape(n_steps * bpp, n_groups * npp)  # [T', U']
        real = real.transpose(0, 2, 1, 3).reshape(n_steps * bpp, n_groups * npp)
        n_bins = int(real[:, 0].sum()) if real.size else 0
        return grid[:n_bins, : tokens.n_units]
