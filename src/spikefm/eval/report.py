"""Score tables against baselines, and ``spikefm report RUN_DIR``: markdown + PNG figures."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.evaluate import Predictions, predict, score
from spikefm.eval.scoreboard import baseline_scores, oracle_row, split_arrays, val_arrays

__all__ = ["ScoreTable", "score_table", "write_report", "read_loss_curves", "prediction_figures", "BASELINE_BIN_SIZE"]

BASELINE_BIN_SIZE = 0.02  # s; baselines and the oracle are scored on 20 ms bins


@dataclass
class ScoreTable:
    """Rows ``(session, model) -> {metric: value}``, with the predictions kept for figures."""

    rows: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    predictions: dict[str, Predictions] = field(default_factory=dict)

    def markdown(self) -> str:
        metrics = sorted({m for row in self.rows.values() for m in row})
        lines = ["| session | model | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for (session, model), row in self.rows.items():
            cells = [f"{row[m]:.3f}" if m in row else "-" for m in metrics]
            lines.append(f"| {session} | {model} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps([{"session": s, "model": m, **row} for (s, m), row in self.rows.items()], indent=2)


def score_table(
    module: Any, config: Any, recordings: Sequence[Recording], *, dataset: Any = None, split: str = "test"
) -> ScoreTable:
    """Score the trained model on each recording's ``split`` trials beside the baselines and oracle."""
    from spikefm.models.registry import build_config, get_spec, is_causal

    spec = get_spec(config.model.name)
    tokenizer = spec.make_tokenizer(build_config(config.model.name, config.model.preset, **config.model.overrides),
                                    **config.tokenizer)
    table = ScoreTable()
    window = config.data.window
    for rec in recordings:
        predictions = predict(module.model, tokenizer, rec, split=split, window=window, pack=spec.pack)
        table.predictions[rec.session] = predictions
        table.rows[(rec.session, config.model.name)] = score(predictions)
        train, test = split_arrays(rec, bin_size=BASELINE_BIN_SIZE, window=window)
        val = val_arrays(rec, bin_size=BASELINE_BIN_SIZE, window=window)
        causal = is_causal(config.model.name, build_config(config.model.name, config.model.preset,
                                                           **config.model.overrides))
        for name, row in baseline_scores(train, test, val=val, causal=causal).items():
            table.rows[(rec.session, name)] = row
        if dataset is not None and rec.session in [r.session for r in dataset.recordings]:
            index = dataset.session_index(rec.session)
            true = [
                np.stack([dataset.true_rate_counts(index, BASELINE_BIN_SIZE, t0, t0 + window) for t0 in arrays.starts])
                for arrays in (train, test)
            ]
            table.rows[(rec.session, "oracle")] = oracle_row(true[0], true[1], train, test)
    return table


def read_loss_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    path = run_dir / "logs" / "metrics.csv"
    if not path.exists():
        return {}
    curves: dict[str, tuple[list, list]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            for key in ("train/loss", "val/loss"):
                if row.get(key):
                    steps, values = curves.setdefault(key, ([], []))
                    steps.append(int(row["step"]))
                    values.append(float(row[key]))
    return {k: (np.array(s), np.array(v)) for k, (s, v) in curves.items()}


def write_report(run_dir: str | Path, *, split: str = "test") -> Path:
    """Write ``report.md`` with loss curves, the score table and prediction figures into ``run_dir``."""
    from spikefm.eval.plots import plot_curves
    from spikefm.train.data import load_recordings
    from spikefm.train.fit import load_checkpoint

    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoints" / "final.ckpt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{run_dir} has no checkpoints/final.ckpt; is it a `spikefm train` run folder?")
    module, config = load_checkpoint(checkpoint)
    recordings, dataset = load_recordings(config.data, seed=config.trainer.seed)
    table = score_table(module, config, recordings, dataset=dataset, split=split)
    lines = [f"# {config.name}: {config.model.name} ({config.model.preset})", "", f"## Scores ({split} trials)", "",
             table.markdown(), ""]
    curves = read_loss_curves(run_dir)
    if curves:
        lines += ["## Loss", "", f"![loss]({plot_curves(curves, run_dir / 'loss.png').name})", ""]
    session, predictions = next(iter(table.predictions.items()))
    lines += prediction_figures(run_dir, session, predictions, dataset, config.data.window)
    (run_dir / "scores.json").write_text(table.to_json())
    report = run_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def prediction_figures(
    out_dir: Path, session: str, predictions: Predictions, dataset: Any, window: float, *, prefix: str = ""
) -> list[str]:
    """Figures of decoded behaviour and/or predicted rates for one session; returns markdown lines."""
    from spikefm.eval.plots import plot_traces

    lines: list[str] = []
    if predictions.behavior is not None:
        trial = 0
        valid = predictions.query_mask[trial]
        times = np.arange(valid.sum()) * (window / max(1, predictions.query_mask.shape[1]))
        path = plot_traces(times, predictions.behavior[trial][valid], predictions.behavior_true[trial][valid],
                           out_dir / f"{prefix}behavior.png", title=f"{session}: decoded vs true behaviour, test trial 0")
        lines += ["## Decoded behaviour", "", f"![behaviour]({path.name})", ""]
    if predictions.rates is not None:
        held = np.flatnonzero(predictions.heldout)[:4] if predictions.heldout.any() else np.arange(4)
        bins = predictions.rates.shape[1]
        times = (np.arange(bins) + 0.5) * (window / bins)
        if dataset is not None and session in [r.session for r in dataset.recordings]:
            t0 = predictions.starts[0]
            truth = dataset.true_rate_counts(session, window / bins, t0, t0 + window)[:, held]
            rates, title = predictions.rates[0][:, held], f"{session}: predicted vs true rate, test trial 0"
        else:
            truth = predictions.counts[:, :, held].mean(0)
            rates, title = predictions.rates[:, :, held].mean(0), f"{session}: trial-averaged prediction vs counts"
        path = plot_traces(times, rates, truth, out_dir / f"{prefix}rates.png", labels=[f"unit {i}" for i in held],
                           title=title + " (held-out units, counts per bin)")
        lines += ["## Predicted rates", "", f"![rates]({path.name})", ""]
    return lines
