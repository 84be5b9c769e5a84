"""The FALCON protocol: train on held-in sessions, adapt to held-out ones with few-shot calibration, masked R2.

FALCON (Karpowicz et al. 2024; ``falcon_challenge.evaluator``) scores a decoder on every 20 ms bin whose
``eval_mask`` is True, per session, with R2 variance-weighted over the target's dimensions; it reports the
mean and standard deviation over sessions, separately for held-in and held-out sessions
(:func:`falcon_r2` equals ``FalconEvaluator.compute_metrics_regression`` on the same arrays).

:func:`run_falcon` runs one decoder (any registered decoding model) through it:

1. **train** on the held-in sessions' calibration files (consecutive windows tiling each file);
2. **adapt** to each held-out session with its calibration file: ``zero_shot`` (unlabelled: SPINT's
   ``calibrate`` reads only spikes, as in the SPINT paper), ``recalibrate`` (session-specific parameters on
   labelled calibration windows) or ``finetune`` (all parameters); the default is the first the model supports;
3. **score** every evaluation file (held-in and held-out) on its eval-masked bins. A model decodes at its own
   query times; its predictions are linearly interpolated to FALCON's target timestamps.

>>> files = ["sub-MonkeyL-held-in-calib_ses-20120924.nwb", "sub-MonkeyL-held-out-calib_ses-20121004.nwb",
...          "sub-MonkeyL-held-in-minival_ses-20120924.nwb", "sub-MonkeyL-held-out-eval_ses-20121004.nwb"]
>>> result = run_falcon(FalconProtocol(model="spint"), [read_falcon(f) for f in files])  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from spikefm.data.falcon import falcon_arrays
from spikefm.data.recording import DataError, Intervals, Recording
from spikefm.eval.evaluate import predict
from spikefm.eval.metrics import decoding_r2
from spikefm.models.registry import build_config, get_spec

__all__ = ["falcon_r2", "decode_falcon", "FalconProtocol", "FalconResult", "run_falcon", "run_falcon_files",
           "ADAPTATIONS"]

ADAPTATIONS = ("zero_shot", "recalibrate", "finetune")


def falcon_r2(preds: dict[str, np.ndarray], targets: dict[str, np.ndarray],
              masks: dict[str, np.ndarray]) -> dict[str, float]:
    """FALCON's regression score: per session, R2 variance-weighted over dims on eval-masked bins.

    Args:
        preds, targets: ``{session: [T, D]}`` on FALCON's bins (several files of a session concatenated).
        masks: ``{session: bool [T]}``.

    Returns:
        ``{"R2 Mean", "R2 Std.", "<session> R2"...}``; sessions in sorted order, as FALCON's evaluator.
    """
    per_session = {}
    for session in sorted(targets):
        mask = np.asarray(masks[session], bool)
        if not mask.any():
            raise DataError(f"session {session}: eval_mask selects no bins")
        per_session[session] = decoding_r2(np.asarray(preds[session])[mask], np.asarray(targets[session])[mask])
    values = np.array(list(per_session.values()))
    return {"R2 Mean": float(values.mean()), "R2 Std.": float(values.std()),
            **{f"{s} R2": float(v) for s, v in per_session.items()}}


def _tiled(rec: Recording, window: float) -> Recording:
    """``rec`` with its trials replaced by consecutive ``window``-second windows from its first FALCON bin."""
    start = float(falcon_arrays(rec).bin_starts[0]) if rec.metadata.get("falcon") else rec.start
    n = int(np.floor((rec.end - start) / window + 1e-9))
    if n < 1:
        raise DataError(f"{rec.source or rec.session}: shorter than one {window} s window")
    starts = start + np.arange(n) * window
    return replace(rec, trials=Intervals(starts, starts + window, {"split": np.full(n, "falcon")}))


def _windows(tiled: Recording, tokenizer: Callable) -> list:
    """One token sample per window of a :func:`_tiled` recording."""
    return [tokenizer(tiled.window(t0, t1)) for t0, t1 in zip(tiled.trials.start, tiled.trials.end)]


def decode_falcon(model: torch.nn.Module, tokenizer: Callable, rec: Recording, *, window: float,
                  pack: bool = False) -> np.ndarray:
    """A decoder's predictions ``[T, D]`` at the FALCON target timestamps of ``rec``.

    The file is tiled into consecutive windows; predictions at the model's query times are interpolated
    linearly to each target timestamp (clamped at the ends of the decoded span).
    """
    tiled = _tiled(rec, window)
    out = predict(model, tokenizer, tiled, split="falcon", window=window, pack=pack)
    if out.behavior is None:
        raise DataError(f"{type(model).__name__} decodes no behaviour; FALCON scores decoders")
    times = (out.starts[:, None] + out.query_times)[out.query_mask]
    values = out.behavior[out.query_mask]
    order = np.argsort(times, kind="stable")
    stamps = rec.behavior[rec.metadata["falcon"]["target"]].timestamps
    return np.stack([np.interp(stamps, times[order], values[order, d]) for d in range(values.shape[1])], axis=1)


@dataclass
class FalconProtocol:
    """Settings of one FALCON run.

    Attributes:
        model: a registered decoding model.
        preset: its preset.
        overrides: model config overrides (``behavior_key`` is set to the FALCON target).
        adaptation: one of :data:`ADAPTATIONS`, or None for the first the model supports.
        window: seconds per window.
        calibration_windows: held-out calibration windows used (None: the whole calibration file).
        train_steps, adapt_steps: optimizer steps of training and of adaptation.
        lr, adapt_lr: peak AdamW learning rates.
        batch_size: windows per step.
        seed: seeds initialisation and batches.
    """

    model: str
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    adaptation: str | None = None
    window: float = 1.0
    calibration_windows: int | None = None
    train_steps: int = 1000
    adapt_steps: int = 200
    lr: float = 2e-3
    adapt_lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.adaptation is not None and self.adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {ADAPTATIONS} or None, got {self.adaptation!r}")


@dataclass
class FalconResult:
    """Scores of one run: ``held_in`` / ``held_out`` are :func:`falcon_r2` dicts (empty without eval files)."""

    model: str
    adaptation: str
    held_in: dict[str, float]
    held_out: dict[str, float]

    def markdown(self) -> str:
        lines = ["| model | adaptation | split | R2 Mean | R2 Std. |", "|---|---|---|---|---|"]
        for split, row in (("held-in", self.held_in), ("held-out", self.held_out)):
            if row:
                lines.append(f"| {self.model} | {self.adaptation} | {split} | {row['R2 Mean']:.3f} | "
                             f"{row['R2 Std.']:.3f} |")
        return "\n".join(lines)


def _role(rec: Recording) -> tuple[str, str]:
    info = rec.metadata.get("falcon") or {}
    role, part = info.get("role", ""), info.get("part", "")
    if role not in ("held_in", "held_out") or part not in ("calib", "minival", "eval"):
        raise DataError(
            f"{rec.source or rec.session}: cannot tell its FALCON role and part from the file name "
            "(expected held-in / held-out and calib / minival / eval, as in FALCON's DANDI names)"
        )
    return role, part


def _adaptation(model: torch.nn.Module, wanted: str | None) -> str:
    recalibrates = hasattr(model, "adapt_context") or hasattr(model, "freeze_for_recalibration")
    supported = [a for a, ok in (("zero_shot", hasattr(model, "calibrate")), ("recalibrate", recalibrates),
                                 ("finetune", True)) if ok]  # fmt: skip
    if wanted is None:
        return supported[0]
    if wanted not in supported:
        raise ValueError(f"{type(model).__name__} does not support {wanted!r} (supports {supported})")
    return wanted


def run_falcon(protocol: FalconProtocol, recordings: Sequence[Recording],
               log: Callable[[str], None] = print) -> FalconResult:
    """Train, adapt and score one decoder on FALCON recordings (from :func:`spikefm.data.falcon.read_falcon`).

    Raises:
        DataError: no held-in calibration file, a held-out eval session without a calibration file, or
            files whose role cannot be told.
    """
    from spikefm.eval.transfer import _recalibration_params, train_steps

    groups: dict[tuple[str, str], list[Recording]] = {}
    for rec in recordings:
        groups.setdefault(_role(rec), []).append(rec)
    train = groups.get(("held_in", "calib"), [])
    if not train:
        raise DataError("FALCON needs at least one held-in calibration file to train on")
    target = train[0].metadata["falcon"]["target"]
    spec = get_spec(protocol.model)
    if spec.task != "decoding":
        raise DataError(f"{protocol.model} is not a decoder; FALCON scores decoders")
    config = build_config(protocol.model, protocol.preset, **{"behavior_key": target, **protocol.overrides})
    tokenizer = spec.make_tokenizer(config)
    windows = lambda rec: _windows(_tiled(rec, protocol.window), tokenizer)  # noqa: E731
    fit = lambda model, samples, steps, lr, params=None: train_steps(  # noqa: E731
        model, spec.objective, samples, steps=steps, lr=lr, batch_size=protocol.batch_size, pack=spec.pack,
        params=params, seed=protocol.seed, weight_decay=0.0 if params is not None else 0.01)
    torch.manual_seed(protocol.seed)
    calib_out = groups.get(("held_out", "calib"), [])
    model = spec.model_cls(config, **spec.sizes_from_data(train + calib_out, config))
    fit(model, [w for rec in train for w in windows(rec)], protocol.train_steps, protocol.lr)
    log(f"{protocol.model}: trained {protocol.train_steps} steps on {len(train)} held-in file(s)")
    adaptation = _adaptation(model, protocol.adaptation)
    models = {rec.session: model for rec in train}
    if hasattr(model, "calibrate"):
        for rec in train:  # a held-in calibration file is calibration data throughout: its first windows
            tiled = _tiled(rec, protocol.window)
            model.calibrate(tiled, list(range(len(tiled.trials)))[: protocol.calibration_windows])
    for rec in calib_out:
        adapted, tiled = copy.deepcopy(model), _tiled(rec, protocol.window)
        rows = list(range(len(tiled.trials)))[: protocol.calibration_windows]
        labelled = windows(rec)[: protocol.calibration_windows]
        if adaptation == "zero_shot":
            adapted.calibrate(tiled, rows)
        elif adaptation == "recalibrate":
            fit(adapted, labelled, protocol.adapt_steps, protocol.adapt_lr, _recalibration_params(adapted, rec))
        else:
            if hasattr(adapted, "add_session"):
                adapted.add_session(rec)
            if hasattr(adapted, "calibrate"):
                adapted.calibrate(tiled, rows)
            fit(adapted, labelled, protocol.adapt_steps, protocol.adapt_lr)
        models[rec.session] = adapted
        log(f"{protocol.model}: adapted to held-out session {rec.session} ({adaptation}, {len(rows)} windows)")
    scores = {}
    for role in ("held_in", "held_out"):
        preds, targets, masks = {}, {}, {}
        for rec in groups.get((role, "minival"), []) + groups.get((role, "eval"), []):
            if rec.session not in models:
                raise DataError(f"{rec.source}: no calibration file for session {rec.session} to adapt to")
            arrays = falcon_arrays(rec)
            pred = decode_falcon(models[rec.session], tokenizer, rec, window=protocol.window, pack=spec.pack)
            for store, value in ((preds, pred), (targets, arrays.target), (masks, arrays.eval_mask)):
                store[rec.session] = np.concatenate([store[rec.session], value]) if rec.session in store else value
        scores[role] = falcon_r2(preds, targets, masks) if targets else {}
    return FalconResult(protocol.model, adaptation, scores["held_in"], scores["held_out"])


def run_falcon_files(paths: Sequence[str | Path], model: str, overrides: Sequence[str] = (), *,
                     log: Callable[[str], None] = print) -> str:
    """``spikefm falcon``: read FALCON files, run :func:`run_falcon`, return its markdown table.

    Args:
        overrides: ``field=value`` settings of :class:`FalconProtocol` (values parsed as YAML).
    """
    import dataclasses

    import yaml

    from spikefm.data.falcon import read_falcon

    known = {f.name for f in dataclasses.fields(FalconProtocol)}
    settings: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise KeyError(f"--set {item!r}: expected field=value with a field of {sorted(known - {'model'})}")
        settings[key] = yaml.safe_load(value)
    result = run_falcon(FalconProtocol(model=model, **settings), [read_falcon(p) for p in paths], log=log)
    return result.markdown()
