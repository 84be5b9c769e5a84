"""Neural Latents Benchmark trial tensors, cut exactly as ``nlb_tools.make_tensors`` cuts them.

NLB bins spikes on a 1 ms grid that starts at t = 0 (a spike at ``t`` falls in millisecond
``int(round(t * 1000, 6))``), sums those into 5 ms or 20 ms bins on the same grid, and cuts each
trial at a fixed offset from an event (MC_Maze: ``move_onset_time`` -250 to +450 ms). The forward
window is the ``fp_len`` (200 ms) after that. Trials whose event is NaN are left out, as NLB drops them.

Dataset parameters are NLB's ``make_tensors.PARAMS`` for the trial-aligned datasets (MC_Maze and its
scaling variants, Area2_Bump). A group name is the dataset name plus ``_20`` for 20 ms bins.

>>> spec = NLB_DATASETS["mc_maze_small"]
>>> spec.align_field, spec.align_range_ms, group_name("mc_maze_small", 20)
('move_onset_time', (-250, 450), 'mc_maze_small_20')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spikefm.data.recording import DataError, Recording

__all__ = [
    "NLBSpec",
    "NLB_DATASETS",
    "NLB_BIN_MS",
    "PHASES",
    "group_name",
    "infer_dataset",
    "trial_rows",
    "nlb_counts",
    "bin_starts",
    "window_starts_ms",
    "nlb_behavior",
    "condition_index",
]

NLB_BIN_MS = (5, 20)
#: phase -> (splits whose trials are "train", the split whose trials are "eval"), as NLB's val / test phases.
PHASES = {"val": (("train",), "val"), "test": (("train", "val"), "test")}


@dataclass(frozen=True)
class NLBSpec:
    """One NLB dataset's tensor parameters (``nlb_tools.make_tensors.PARAMS``).

    Attributes:
        name: NLB dataset name (``mc_maze_small``...).
        align_field: trial column of event times the windows align to.
        align_range_ms: window ``[start, end)`` in ms from the event.
        lag_ms: behaviour lag (behaviour is read ``lag`` ms after the neural bin).
        fp_len_ms: forward-prediction window after the eval window.
        kern_sd_ms: Gaussian sd for the PSTH.
        cond_fields: trial columns whose value combination defines a PSTH condition.
        behavior_field: the behaviour series decoded for vel R2.
        decode_mask_field: trial column splitting trials into separately decoded groups (Area2_Bump), or None.
    """

    name: str
    align_field: str = "move_onset_time"
    align_range_ms: tuple[int, int] = (-250, 450)
    lag_ms: int = 120
    fp_len_ms: int = 200
    kern_sd_ms: int = 50
    cond_fields: tuple[str, ...] = ("trial_type", "trial_version")
    behavior_field: str = "hand_vel"
    decode_mask_field: str | None = None

    @property
    def window(self) -> float:
        """Eval window length in seconds."""
        return (self.align_range_ms[1] - self.align_range_ms[0]) / 1000.0


NLB_DATASETS: dict[str, NLBSpec] = {
    "mc_maze": NLBSpec("mc_maze", lag_ms=100, kern_sd_ms=70),
    "mc_maze_large": NLBSpec("mc_maze_large"),
    "mc_maze_medium": NLBSpec("mc_maze_medium"),
    "mc_maze_small": NLBSpec("mc_maze_small"),
    "area2_bump": NLBSpec(
        "area2_bump", align_range_ms=(-100, 500), lag_ms=-20, kern_sd_ms=40,
        cond_fields=("cond_dir", "ctr_hold_bump"), decode_mask_field="ctr_hold_bump",
    ),
}  # fmt: skip

# DANDI file names of the NLB datasets: sub-<animal>[_ses-<size>]_desc-<split>_ecephys.nwb
_FILE_PATTERNS = (
    (r"sub-Jenkins_ses-(small|medium|large)", lambda m: f"mc_maze_{m.group(1)}"),
    (r"sub-Jenkins", lambda m: "mc_maze"),
    (r"sub-Han", lambda m: "area2_bump"),
)


def group_name(dataset: str, bin_ms: int) -> str:
    """NLB's HDF5 group for ``dataset`` at ``bin_ms`` (``""`` suffix at 5 ms, ``_20`` at 20 ms)."""
    if bin_ms not in NLB_BIN_MS:
        raise ValueError(f"NLB scores 5 ms or 20 ms bins, got {bin_ms} ms")
    return dataset if bin_ms == 5 else f"{dataset}_{bin_ms}"


def infer_dataset(recordings: Sequence[Recording]) -> str:
    """The NLB dataset of recordings read from NLB's DANDI files (from their file names); ``mc_maze`` for
    spikefm's synthetic sessions, whose trials are cut like MC_Maze's (``spikefm synth --nlb-targets``)."""
    for rec in recordings:
        if "latent_system" in rec.metadata:
            return "mc_maze"
        for pattern, name in _FILE_PATTERNS:
            match = re.search(pattern, rec.source)
            if match:
                return name(match)
    sources = [rec.source or rec.session for rec in recordings]
    raise DataError(
        f"cannot tell which NLB dataset {sources} belong to; name it (one of {sorted(NLB_DATASETS)}), "
        "e.g. `spikefm eval --nlb-dataset mc_maze_small`"
    )


def trial_rows(rec: Recording, splits: Sequence[str], spec: NLBSpec) -> np.ndarray:
    """Row indices of the trials in ``splits`` with a finite alignment event, in table order."""
    trials = rec.trials
    name = rec.source or rec.session
    if trials is None or "split" not in trials.columns:
        raise DataError(f"{name}: NLB tensors need a trials table with a 'split' column")
    if spec.align_field not in trials.columns:
        raise DataError(
            f"{name}: trials have no {spec.align_field!r} column, which NLB's {spec.name} windows align to "
            f"(columns: {sorted(trials.columns)})"
        )
    keep = np.isin(trials.columns["split"].astype(str), list(splits))
    keep &= np.isfinite(trials.columns[spec.align_field].astype(np.float64))
    return np.flatnonzero(keep)


def _ms(t: np.ndarray) -> np.ndarray:
    """NLB's millisecond index of times in seconds (decimal truncation after rounding to 6 places)."""
    return np.round(np.asarray(t, np.float64) * 1000.0, 6).astype(np.int64)


def window_starts_ms(rec: Recording, rows: np.ndarray, spec: NLBSpec, offset_ms: int) -> np.ndarray:
    """First millisecond of each trial's window: the event plus ``offset_ms``, up to NLB's bin grid."""
    event_ms = np.round(rec.trials.columns[spec.align_field][rows].astype(np.float64) * 1000.0, 6)
    return np.ceil(np.round(event_ms + offset_ms, 6)).astype(np.int64)


def nlb_counts(
    rec: Recording, rows: np.ndarray, spec: NLBSpec, bin_ms: int, *, forward: bool = False
) -> np.ndarray:
    """Spike counts ``[trials, bins, units]`` in NLB's eval window (or, with ``forward``, the window after it).

    Bins are NLB's: ``bin_ms`` sums of the 1 ms grid from t = 0, the first the one at or after the window start.
    """
    lo_ms, hi_ms = spec.align_range_ms
    offset, length = (hi_ms, spec.fp_len_ms) if forward else (lo_ms, hi_ms - lo_ms)
    n_bins = length // bin_ms
    starts = window_starts_ms(rec, rows, spec, offset)
    first = -(-starts // bin_ms)  # ceil: NLB's rows are the grid bins whose start lies in the window
    spike_bin = _ms(rec.spikes.times) // bin_ms
    out = np.zeros((rows.size, n_bins, rec.n_units), np.int64)
    for k, b0 in enumerate(first):
        lo, hi = np.searchsorted(spike_bin, [b0, b0 + n_bins], side="left")
        np.add.at(out[k], (spike_bin[lo:hi] - b0, rec.spikes.units[lo:hi]), 1)
    return out


def bin_starts(rec: Recording, rows: np.ndarray, spec: NLBSpec, bin_ms: int) -> np.ndarray:
    """Absolute start (s) of each eval-window bin, ``[trials, bins]``."""
    lo_ms, hi_ms = spec.align_range_ms
    first = -(-window_starts_ms(rec, rows, spec, lo_ms) // bin_ms)
    return (first[:, None] + np.arange((hi_ms - lo_ms) // bin_ms)) * bin_ms / 1000.0


def nlb_behavior(rec: Recording, rows: np.ndarray, spec: NLBSpec, bin_ms: int) -> np.ndarray | None:
    """Behaviour ``[trials, bins, dims]`` at each bin's start plus NLB's lag (linear interpolation), or None.

    NLB itself low-pass filters 1 ms behaviour before decimating to the bin width; a recording whose behaviour
    is sampled more coarsely than that (synthetic data: 10 ms) is read at the bin times instead. NaN outside
    the behaviour's time span, as NLB pads.
    """
    series = rec.behavior.get(spec.behavior_field)
    if series is None:
        return None
    times = bin_starts(rec, rows, spec, bin_ms) + spec.lag_ms / 1000.0
    stamps, values = series.timestamps, series.values
    out = np.stack([np.interp(times, stamps, values[:, d], left=np.nan, right=np.nan) for d in range(series.dim)], -1)
    return out.astype(np.float64)


def condition_index(rec: Recording, train_rows: np.ndarray, eval_rows: np.ndarray, spec: NLBSpec):
    """NLB's conditions: ``(combinations, train_cond_idx, eval_cond_idx)``, or None without condition columns.

    Conditions are the sorted unique combinations of ``spec.cond_fields`` (``condition`` when the trials have
    none of them, as synthetic sessions) over train and eval trials; ``*_cond_idx[c]`` lists the positions,
    within the train / eval trials, of the trials in condition ``c`` (NLB keeps one index array per condition).
    """
    columns = rec.trials.columns
    fields = [f for f in spec.cond_fields if f in columns] or (["condition"] if "condition" in columns else [])
    if not fields:
        return None
    keys = [tuple(columns[f][r].item() for f in fields) for r in range(len(rec.trials))]
    valid = lambda key: not any(isinstance(v, float) and np.isnan(v) for v in key)  # noqa: E731
    combos = sorted({keys[r] for r in np.concatenate([train_rows, eval_rows]) if valid(keys[r])})
    index = {combo: c for c, combo in enumerate(combos)}
    members = lambda rows: [  # noqa: E731
        np.array([i for i, r in enumerate(rows) if index.get(keys[r]) == c], np.int64) for c in range(len(combos))
    ]
    return combos, members(train_rows), members(eval_rows)
