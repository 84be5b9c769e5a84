"""Submissions and evaluation targets in the Neural Latents Benchmark's exact layout, and NLB's scores.

A submission (``spikefm eval --out``) and a target file (``spikefm synth --nlb-targets``) hold one group
per NLB dataset and bin width (``mc_maze_small_20``; see :mod:`spikefm.eval.nlb_tensors`), with the keys
``nlb_tools.evaluation.evaluate`` reads:

- submission: ``train_rates_heldin`` / ``train_rates_heldout`` (train trials), ``eval_rates_heldin`` /
  ``eval_rates_heldout`` (eval trials), ``eval_rates_heldin_forward`` / ``eval_rates_heldout_forward``
  (the 200 ms after each eval window); expected counts per bin ``[trials, bins, units]``, float32.
- targets: ``eval_spikes_heldout``, ``train_behavior``, ``eval_behavior``, ``eval_spikes_heldin_forward``,
  ``eval_spikes_heldout_forward``, ``psth`` ``[conditions, bins, units]``, ``eval_cond_idx`` /
  ``train_cond_idx`` (one array of trial positions per condition, variable-length), ``train_decode_mask`` /
  ``eval_decode_mask`` where NLB has them; synthetic targets add ``eval_true_rates_heldout``.

Trials are the phase's train and eval splits (``val`` phase: train / val; ``test`` phase: train + val / test)
in table order; held-in units first, then held-out, each in unit-table order.

Forward rates come from running the model on the eval window plus the forward window with the forward
spikes removed, so it never sees what it predicts. :func:`nlb_scores` computes NLB's metric set from
the same arrays with :mod:`spikefm.eval.metrics`; ``nlb_tools.evaluate`` on the written files agrees.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains
from spikefm.eval.metrics import co_bps, fp_bps, psth_r2, smooth_psth, velocity_r2
from spikefm.eval.nlb_tensors import (
    NLB_DATASETS,
    PHASES,
    NLBSpec,
    bin_starts,
    condition_index,
    group_name,
    infer_dataset,
    nlb_behavior,
    nlb_counts,
    trial_rows,
    window_starts_ms,
)

__all__ = ["submission_arrays", "target_arrays", "nlb_scores", "as_written", "write_nlb_h5", "read_nlb_h5",
           "write_submission", "write_synthetic_targets", "nlb_report", "nlb_cli_report"]


# ----------------------------------------------------------------------------- model predictions
def _stitched(rec: Recording, rows: np.ndarray, spec: NLBSpec, bin_ms: int, *, seen_ms: int, total_ms: int,
              drop_heldout: bool) -> Recording:
    """Each trial's first ``seen_ms`` of window (from its first NLB bin) laid end to end, one ``total_ms`` trial each.

    The model reads only what NLB's input tensors hold: the window's spikes (held-in only for eval trials),
    nothing from neighbouring trials, and nothing in the forward window it is asked to predict.
    """
    period = (total_ms + 100) / 1000.0
    starts_ms = -(-window_starts_ms(rec, rows, spec, spec.align_range_ms[0]) // bin_ms) * bin_ms
    keep_unit = ~rec.units.heldout if drop_heldout else np.ones(rec.n_units, bool)
    spike_ms = np.round(rec.spikes.times * 1000.0, 6).astype(np.int64)
    times, units = [], []
    for k, s0 in enumerate(starts_ms):
        lo, hi = np.searchsorted(spike_ms, [s0, s0 + seen_ms], side="left")
        keep = keep_unit[rec.spikes.units[lo:hi]]
        times.append(rec.spikes.times[lo:hi][keep] - s0 / 1000.0 + k * period)
        units.append(rec.spikes.units[lo:hi][keep])
    new_starts = np.arange(rows.size) * period
    trials = Intervals(new_starts, new_starts + total_ms / 1000.0, {"split": np.full(rows.size, "nlb")})
    spikes = SpikeTrains(np.concatenate(times) if times else np.zeros(0), np.concatenate(units) if units else [])
    order = np.argsort(spikes.times, kind="stable")
    return replace(rec, spikes=SpikeTrains(spikes.times[order], spikes.units[order]), behavior={}, trials=trials,
                   start=0.0, end=float(rows.size * period))


def _rates(model: Any, tokenizer: Any, pack: bool, rec: Recording, rows: np.ndarray, spec: NLBSpec, bin_ms: int,
           *, forward: bool, drop_heldout: bool) -> np.ndarray:
    """Model rates ``[trials, bins, units]`` on the eval window, or on the forward window after it."""
    from spikefm.eval.evaluate import predict

    lo_ms, hi_ms = spec.align_range_ms
    seen = hi_ms - lo_ms
    total = seen + (spec.fp_len_ms if forward else 0)
    stitched = _stitched(rec, rows, spec, bin_ms, seen_ms=seen, total_ms=total, drop_heldout=drop_heldout)
    predictions = predict(model, tokenizer, stitched, split="nlb", window=total / 1000.0, pack=pack)
    if predictions.rates is None:
        raise DataError(f"model {type(model).__name__} predicts no rates; NLB scores rate models")
    n_bins = total // bin_ms
    if predictions.rates.shape[1] != n_bins:
        raise DataError(
            f"the model returns {predictions.rates.shape[1]} bins for a {total} ms window; NLB needs {bin_ms} ms "
            f"bins ({n_bins}): train with tokenizer bin_size={bin_ms / 1000:g}"
        )
    first = seen // bin_ms if forward else 0
    return predictions.rates[:, first:]


def submission_arrays(model: Any, tokenizer: Any, rec: Recording, *, dataset: str, bin_ms: int = 20,
                      phase: str = "test", pack: bool = False, forward: bool = True) -> dict[str, np.ndarray]:
    """A rate model's NLB submission arrays for one recording (its train and eval trials of ``phase``).

    Args:
        model: a model whose outputs hold ``log_rates`` over every bin of the window, in eval mode.
        tokenizer: the model's tokenizer; its bin width must be ``bin_ms``.
        rec: the recording; ``units.heldout`` marks NLB's held-out units.
        dataset: NLB dataset name (a key of :data:`NLB_DATASETS`).
        bin_ms: 5 or 20.
        phase: ``"val"`` or ``"test"`` (see :data:`PHASES`).
        pack: collate packed (the model spec's ``pack``).
        forward: also predict the forward window (``*_forward`` keys).
    """
    spec, (train_splits, eval_split) = NLB_DATASETS[dataset], PHASES[phase]
    held = rec.units.heldout
    out: dict[str, np.ndarray] = {}
    for prefix, splits in (("train", train_splits), ("eval", (eval_split,))):
        rows = trial_rows(rec, splits, spec)
        if rows.size == 0:
            continue
        rates = _rates(model, tokenizer, pack, rec, rows, spec, bin_ms, forward=False, drop_heldout=prefix == "eval")
        out[f"{prefix}_rates_heldin"], out[f"{prefix}_rates_heldout"] = rates[..., ~held], rates[..., held]
        if prefix == "eval" and forward:
            try:
                fp = _rates(model, tokenizer, pack, rec, rows, spec, bin_ms, forward=True, drop_heldout=True)
            except (DataError, ValueError) as err:  # e.g. STNDT's spatial tokens are fixed to the trained length
                warnings.warn(f"no forward prediction (fp-bps) from {type(model).__name__}: {err}", stacklevel=2)
                continue
            out["eval_rates_heldin_forward"], out["eval_rates_heldout_forward"] = fp[..., ~held], fp[..., held]
    return {k: v.astype(np.float32) for k, v in out.items()}


# ----------------------------------------------------------------------------- targets
def target_arrays(rec: Recording, *, dataset: str, bin_ms: int = 20, phase: str = "test",
                  true_rates: Any = None) -> dict[str, np.ndarray]:
    """NLB evaluation targets for one recording, as ``nlb_tools.make_tensors.make_eval_target_tensors`` makes them.

    The PSTH is each condition's mean over train and eval trials of the counts smoothed with the dataset's
    Gaussian (NLB smooths its 1 ms trains, then bins; here the binned trial is smoothed, see
    :func:`spikefm.eval.metrics.smooth_psth`).

    Args:
        true_rates: optional ``(t0, t1) -> [bins, units]`` expected counts (synthetic ground truth); adds
            ``eval_true_rates_heldout``.
    """
    spec, (train_splits, eval_split) = NLB_DATASETS[dataset], PHASES[phase]
    train_rows, eval_rows = trial_rows(rec, train_splits, spec), trial_rows(rec, (eval_split,), spec)
    name = rec.source or rec.session
    if not rec.units.heldout.any():
        raise DataError(f"{name}: no held-out units, so there is nothing to score co-smoothing on")
    if eval_rows.size == 0 or train_rows.size == 0:
        raise DataError(f"{name}: phase {phase!r} needs train trials {train_splits} and eval trials ({eval_split!r})")
    held = rec.units.heldout
    order = np.concatenate([np.flatnonzero(~held), np.flatnonzero(held)])
    eval_counts = nlb_counts(rec, eval_rows, spec, bin_ms)
    forward = nlb_counts(rec, eval_rows, spec, bin_ms, forward=True)
    out: dict[str, Any] = {
        "eval_spikes_heldout": eval_counts[..., held],
        "eval_spikes_heldin_forward": forward[..., ~held],
        "eval_spikes_heldout_forward": forward[..., held],
    }
    train_behavior = nlb_behavior(rec, train_rows, spec, bin_ms)
    if train_behavior is None:
        raise DataError(f"{name}: no {spec.behavior_field!r} behaviour; NLB's targets carry it for vel R2")
    out["train_behavior"], out["eval_behavior"] = train_behavior, nlb_behavior(rec, eval_rows, spec, bin_ms)
    if spec.decode_mask_field is not None:
        values = rec.trials.columns[spec.decode_mask_field].astype(np.float64)
        for prefix, rows in (("train", train_rows), ("eval", eval_rows)):
            out[f"{prefix}_decode_mask"] = np.stack([values[rows] == 0, values[rows] == 1], axis=1)
    conditions = condition_index(rec, train_rows, eval_rows, spec)
    if conditions is not None:
        combos, train_idx, eval_idx = conditions
        counts = np.concatenate([nlb_counts(rec, train_rows, spec, bin_ms), eval_counts])[..., order]
        cond = np.full(counts.shape[0], -1)
        for c, (tr, ev) in enumerate(zip(train_idx, eval_idx)):
            cond[tr], cond[train_rows.size + ev] = c, c
        has = cond >= 0
        out["psth"] = smooth_psth(counts[has], cond[has], bin_ms / 1000.0, spec.kern_sd_ms / 1000.0,
                                  n_conditions=len(combos))
        out["train_cond_idx"], out["eval_cond_idx"] = _ragged(train_idx), _ragged(eval_idx)
    if true_rates is not None:
        starts = bin_starts(rec, eval_rows, spec, bin_ms)[:, 0]
        out["eval_true_rates_heldout"] = np.stack([true_rates(t0, t0 + spec.window) for t0 in starts])[..., held]
    return out


def _ragged(arrays: list[np.ndarray]) -> np.ndarray:
    ragged = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        ragged[i] = a
    return ragged


# ----------------------------------------------------------------------------- scores
def nlb_scores(submission: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
    """NLB's metrics for one dataset group: co-bps, vel R2, psth R2 (with a PSTH) and fp-bps (with forward keys).

    Same inputs and definitions as ``nlb_tools.evaluation.evaluate``, computed by :mod:`spikefm.eval.metrics`.
    """
    f64 = lambda key, source: np.asarray(source[key], np.float64)  # noqa: E731
    eval_rates = np.concatenate([f64("eval_rates_heldin", submission), f64("eval_rates_heldout", submission)], -1)
    scores = {"co-bps": co_bps(f64("eval_rates_heldout", submission), f64("eval_spikes_heldout", targets))}
    if "train_rates_heldin" in submission:
        train_rates = np.concatenate(
            [f64("train_rates_heldin", submission), f64("train_rates_heldout", submission)], -1)
        masks = (targets.get("train_decode_mask", np.ones((train_rates.shape[0], 1), bool)),
                 targets.get("eval_decode_mask", np.ones((eval_rates.shape[0], 1), bool)))
        scores["vel R2"] = float(np.mean([
            velocity_r2(train_rates[masks[0][:, i]], f64("train_behavior", targets)[masks[0][:, i]],
                        eval_rates[masks[1][:, i]], f64("eval_behavior", targets)[masks[1][:, i]])
            for i in range(masks[0].shape[1])
        ]))  # fmt: skip
    if "psth" in targets:
        cond = np.full(eval_rates.shape[0], -1)
        for c, members in enumerate(targets["eval_cond_idx"]):
            cond[np.asarray(members, np.int64)] = c
        has = cond >= 0
        jitter = targets.get("eval_jitter")
        scores["psth R2"] = psth_r2(eval_rates[has], cond[has], f64("psth", targets),
                                    jitter=None if jitter is None else np.asarray(jitter)[has])
    if "eval_rates_heldin_forward" in submission and "eval_spikes_heldin_forward" in targets:
        rates = np.concatenate([f64("eval_rates_heldin_forward", submission),
                                f64("eval_rates_heldout_forward", submission)], -1)
        spikes = np.concatenate([f64("eval_spikes_heldin_forward", targets),
                                 f64("eval_spikes_heldout_forward", targets)], -1)
        scores["fp-bps"] = fp_bps(rates, spikes)
    return scores


# ----------------------------------------------------------------------------- files
def as_written(arrays: dict[str, Any]) -> dict[str, Any]:
    """The arrays as an NLB file stores them (NLB's ``save_to_h5``: 32-bit numbers), so scores computed
    before writing equal those computed from the file."""
    out = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype == object:
            out[key] = _ragged([np.asarray(v, np.int32) for v in value])
        elif value.dtype.kind in "fiu":
            out[key] = value.astype(np.float32 if value.dtype.kind == "f" else np.int32)
        else:
            out[key] = value
    return out


def write_nlb_h5(groups: dict[str, dict[str, np.ndarray]], path: str | Path) -> Path:
    """Write ``{group: {key: array}}`` as NLB's ``save_to_h5`` does (32-bit numbers; ragged arrays as vlen)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        for group_key, arrays in groups.items():
            group = handle.create_group(group_key)
            for key, value in as_written(arrays).items():
                dtype = h5py.vlen_dtype(np.int32) if value.dtype == object else None
                group.create_dataset(key, data=value, dtype=dtype)
    return path


def read_nlb_h5(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{group: {key: array}}`` of an NLB-layout file (submission or targets)."""
    with h5py.File(path, "r") as handle:
        return {name: {key: node[()] for key, node in group.items()} for name, group in handle.items()}


def _model_parts(module: Any, config: Any) -> tuple[Any, Any, bool]:
    from spikefm.models.registry import build_config, get_spec

    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    return module.model, spec.make_tokenizer(model_config, **config.tokenizer), spec.pack


def _bin_ms(tokenizer: Any) -> int:
    bin_size = getattr(getattr(tokenizer, "config", None), "bin_size", None)
    if bin_size is None:
        raise DataError(f"{type(tokenizer).__name__} has no bin_size; NLB submissions need a binned rate model")
    return int(round(bin_size * 1000))


def nlb_report(module: Any, config: Any, recordings: Sequence[Recording], *, dataset: str | None = None,
               phase: str = "test", forward: bool = True
               ) -> tuple[dict[str, dict], dict[str, dict[str, float]], dict[str, str]]:
    """A rate model's NLB submission groups and, for recordings that hold the eval targets, NLB's scores.

    Returns:
        ``(groups, scores, unscored)``: ``{group name: submission arrays}``, ``{session: {metric: value}}`` and
        ``{session: why it has no scores}`` (e.g. NLB's test file: its held-out spikes are on the leaderboard).
    """
    from spikefm.models.registry import get_spec

    if get_spec(config.model.name).task != "self_supervised":
        raise DataError(f"NLB scores rate models; {config.model.name} decodes behaviour")
    model, tokenizer, pack = _model_parts(module, config)
    bin_ms = _bin_ms(tokenizer)
    dataset = dataset or infer_dataset(recordings)
    if dataset not in NLB_DATASETS:
        raise DataError(f"unknown NLB dataset {dataset!r}; spikefm writes {sorted(NLB_DATASETS)}")
    groups: dict[str, dict] = {}
    scores: dict[str, dict[str, float]] = {}
    unscored: dict[str, str] = {}
    for rec in _complete_units(recordings):
        arrays = submission_arrays(model, tokenizer, rec, dataset=dataset, bin_ms=bin_ms, phase=phase, pack=pack,
                                   forward=forward)
        group = groups.setdefault(group_name(dataset, bin_ms), {})
        for key, value in arrays.items():
            group[key] = np.concatenate([group[key], value]) if key in group else value
        try:
            targets = target_arrays(rec, dataset=dataset, bin_ms=bin_ms, phase=phase)
        except DataError as err:
            unscored[rec.session] = str(err)
            continue
        scores[rec.session] = nlb_scores(as_written(arrays), as_written(targets))
    return groups, scores, unscored


def _complete_units(recordings: Sequence[Recording]) -> list[Recording]:
    """NLB's test files hold held-in units only; give such a recording the held-out units of the train file.

    A recording without held-out units whose unit ids all appear in one that has them (NLB's train file of the
    same session) takes that recording's unit table and session id, so the model predicts the held-out units too.
    """
    reference = next((r for r in recordings if r.units.heldout.any()), None)
    if reference is None:
        return list(recordings)
    index = {uid: i for i, uid in enumerate(reference.units.ids)}
    out = []
    for rec in recordings:
        if rec.units.heldout.any() or not all(uid in index for uid in rec.units.ids):
            out.append(rec)
            continue
        remap = np.array([index[uid] for uid in rec.units.ids], np.int64)
        spikes = SpikeTrains(rec.spikes.times, remap[rec.spikes.units])
        out.append(replace(rec, spikes=spikes, units=reference.units, session=reference.session))
    return out


def write_submission(module: Any, config: Any, recordings: Sequence[Recording], out: str | Path, *,
                     dataset: str | None = None, phase: str = "test") -> Path:
    """Write a trained rate model's NLB submission for ``recordings`` to ``out`` (see the module docstring)."""
    groups, _, _ = nlb_report(module, config, recordings, dataset=dataset, phase=phase)
    return write_nlb_h5(groups, out)


def nlb_cli_report(module: Any, config: Any, recordings: Sequence[Recording], *, dataset: str | None = None,
                   phase: str = "test", out: str | Path | None = None) -> str:
    """What ``spikefm eval`` prints for a rate model: NLB's metric table, and the submission path with ``out``.

    Raises:
        DataError: not a binned rate model, or the recordings lack NLB's trial structure.
    """
    if phase not in PHASES:
        raise ValueError(f"NLB phase must be one of {sorted(PHASES)}, got {phase!r}")
    groups, scores, unscored = nlb_report(module, config, recordings, dataset=dataset, phase=phase)
    metrics = ["co-bps", "vel R2", "psth R2", "fp-bps"]
    lines = [f"NLB metrics ({', '.join(groups)}, {phase} phase; nlb_tools.evaluate gives the same)", "",
             "| session | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for session, row in scores.items():
        lines.append(f"| {session} | " + " | ".join(f"{row[m]:.4f}" if m in row else "-" for m in metrics) + " |")
    for session, reason in unscored.items():
        lines.append(f"| {session} | not scored: {reason} |")
    if out is not None:
        lines += ["", f"NLB submission written to {write_nlb_h5(groups, out)}"]
    return "\n".join(lines)


def write_synthetic_targets(dataset: Any, out_dir: str | Path, *, nlb_dataset: str = "mc_maze",
                            bin_ms: int = 20, phase: str = "test") -> list[Path]:
    """NLB targets for each synthetic session, ``<session>_nlb_targets.h5``, in group ``<nlb_dataset>_20``.

    Synthetic trials carry ``move_onset_time`` and a ``condition``, so they are cut as NLB cuts ``nlb_dataset``.
    """
    paths = []
    for index, rec in enumerate(dataset.recordings):
        truth = lambda t0, t1, i=index: dataset.true_rate_counts(i, bin_ms / 1000.0, t0, t1)  # noqa: E731
        arrays = target_arrays(rec, dataset=nlb_dataset, bin_ms=bin_ms, phase=phase, true_rates=truth)
        path = Path(out_dir) / f"{rec.session}_nlb_targets.h5"
        paths.append(write_nlb_h5({group_name(nlb_dataset, bin_ms): arrays}, path))
    return paths
