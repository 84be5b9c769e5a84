"""Score tables against baselines, and ``spikefm report RUN_DIR``: markdown + PNG figures.

A :class:`ScoreTable` holds ``(session, row) -> {metric: value}``. What a reader sees (terminal or
markdown) keeps only the metrics the trained model reports and the rows that carry one of them, adds
a mean over sessions and each score as a % of the oracle's where an oracle exists, and explains every
metric and baseline it shows in one line. ``spikefm eval`` and ``spikefm train`` save the table as
``scores.json`` in the run folder; ``spikefm report`` reads it back instead of scoring again.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from spikefm.data.recording import Recording
from spikefm.eval.evaluate import Predictions, predict, score
from spikefm.eval.figures import prediction_figures
from spikefm.eval.scoreboard import (
    BASELINE_BIN_SIZE, BASELINE_NOTES, METRIC_NOTES, baseline_scores, oracle_row, split_arrays, val_arrays,
)

__all__ = [
    "ScoreTable", "score_table", "write_report", "read_loss_curves", "prediction_figures", "save_scores",
    "load_scores", "BASELINE_BIN_SIZE", "SCORES_FILE",
]

SCORES_FILE = "scores.json"
ORACLE = "oracle"


@dataclass
class ScoreTable:
    """Rows ``(session, model) -> {metric: value}``, with the predictions kept for figures.

    Attributes:
        rows: scores per (session, row name); row names are the model's, the baselines' and ``oracle``.
        predictions: the model's predictions per session (empty for a table read from ``scores.json``).
        model: the trained model's row name; its metrics decide the columns shown ("" shows every metric).
        split: the trial split scored.
    """

    rows: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    predictions: dict[str, Predictions] = field(default_factory=dict)
    model: str = ""
    split: str = "test"

    def metrics(self) -> list[str]:
        """The columns shown: the model's metrics (every metric when the table has no model row)."""
        rows = [row for (_, name), row in self.rows.items() if name == self.model] or list(self.rows.values())
        return sorted({m for row in rows for m in row})

    def shown(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(session, row, {metric: cell text})`` in display order; rows without a shown metric are left
        out, and mean rows over sessions follow when there is more than one session."""
        metrics = self.metrics()
        lines = []
        for (session, name), row in self.rows.items():
            cells = {m: self._cell(row[m], self.rows.get((session, ORACLE), {}).get(m), name) for m in metrics
                     if m in row}
            if cells:
                lines.append((session, name, cells))
        sessions = list(dict.fromkeys(session for session, _ in self.rows))
        if len(sessions) > 1:
            lines += self._mean_rows(sessions, metrics)
        return lines

    def _mean_rows(self, sessions: list[str], metrics: list[str]) -> list[tuple[str, str, dict[str, str]]]:
        """Means over the sessions where the model has the metric; a row is averaged only if it has
        the metric on every one of those sessions, so all means in a column cover the same sessions."""
        names = list(dict.fromkeys(name for _, name in self.rows))
        means: dict[str, dict[str, float]] = {}
        counts: dict[str, int] = {}
        for metric in metrics:
            covered = [s for s in sessions if metric in self.rows.get((s, self.model), {})] if self.model else sessions
            counts[metric] = len(covered)
            for name in names:
                values = [self.rows.get((s, name), {}).get(metric) for s in covered]
                if covered and all(v is not None for v in values):
                    means.setdefault(name, {})[metric] = float(np.mean(values))
        label = f"mean of {max(counts.values(), default=0)}"
        oracle = means.get(ORACLE, {})
        return [(label, name, {m: self._cell(v, oracle.get(m), name) for m, v in row.items()})
                for name, row in means.items()]

    @staticmethod
    def _cell(value: float, oracle: float | None, name: str) -> str:
        if name == ORACLE or oracle is None or not oracle > 0:
            return f"{value:.3f}"
        return f"{value:.3f} ({value / oracle:.0%})"

    def has_oracle_share(self) -> bool:
        return any("%" in cell for _, _, cells in self.shown() for cell in cells.values())

    def notes(self) -> list[tuple[str, str]]:
        """``(label, one-line explanation)`` for every metric and baseline the table shows."""
        shown = self.shown()
        names = list(dict.fromkeys(name for _, name, _ in shown))
        notes = [(m, METRIC_NOTES[m]) for m in self.metrics() if m in METRIC_NOTES]
        notes += [(name, BASELINE_NOTES[name]) for name in names if name in BASELINE_NOTES]
        if self.has_oracle_share():
            notes.append(("(NN%)", "the score as a share of the oracle's on the same session(s)"))
        return notes

    def markdown(self) -> str:
        """A markdown table (what ``report.md`` shows) followed by the notes as a list."""
        metrics = self.metrics()
        lines = ["| session | model | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for session, name, cells in self.shown():
            lines.append(f"| {session} | {name} | " + " | ".join(cells.get(m, "-") for m in metrics) + " |")
        lines += [""] + [f"- **{label}**: {note}" for label, note in self.notes()]
        return "\n".join(lines)

    def rich(self) -> Group:
        """The table for a terminal (rich), with the notes under it."""
        metrics = self.metrics()
        table = Table(title=f"scores on {self.split} trials", title_justify="left")
        table.add_column("session")
        table.add_column("model")
        for metric in metrics:
            table.add_column(metric, justify="right")
        previous = None
        for session, name, cells in self.shown():
            if previous is not None and session != previous:
                table.add_section()
            previous = session
            style = "bold" if name == self.model else None
            table.add_row(session, name, *[cells.get(m, "-") for m in metrics], style=style)
        notes = [Text.assemble((f"{label}: ", "bold"), note) for label, note in self.notes()]
        return Group(table, *notes)

    def to_dict(self) -> dict[str, Any]:
        rows = [{"session": s, "model": m, **row} for (s, m), row in self.rows.items()]
        return {"model": self.model, "split": self.split, "rows": rows}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ScoreTable":
        rows = {}
        for row in raw["rows"]:
            key = (row["session"], row["model"])
            rows[key] = {k: float(v) for k, v in row.items() if k not in ("session", "model")}
        return cls(rows=rows, model=raw.get("model", ""), split=raw.get("split", "test"))


def score_table(
    module: Any, config: Any, recordings: Sequence[Recording], *, dataset: Any = None, split: str = "test"
) -> ScoreTable:
    """Score the trained model on each recording's ``split`` trials beside the baselines and oracle."""
    from spikefm.models.registry import build_config, is_causal

    spec, tokenizer = _spec_and_tokenizer(config)
    table = ScoreTable(model=config.model.name, split=split)
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
            table.rows[(rec.session, ORACLE)] = oracle_row(true[0], true[1], train, test)
    return table


def _spec_and_tokenizer(config: Any) -> tuple[Any, Any]:
    """The recipe's model spec and the tokenizer it was trained with."""
    from spikefm.models.registry import build_config, get_spec

    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    return spec, spec.make_tokenizer(model_config, **config.tokenizer)


def _fingerprint(checkpoint: Path) -> str:
    digest = hashlib.sha256()
    with checkpoint.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_scores(table: ScoreTable, run_dir: str | Path, *, checkpoint: str | Path, data: Sequence[str]) -> Path:
    """Write ``run_dir/scores.json``: the table, and what it scored (checkpoint digest, data paths, split)."""
    checkpoint = Path(checkpoint)
    raw = {**table.to_dict(), "checkpoint": checkpoint.name, "checkpoint_sha256": _fingerprint(checkpoint),
           "data": [str(p) for p in data]}
    path = Path(run_dir) / SCORES_FILE
    path.write_text(json.dumps(raw, indent=2))
    return path


def load_scores(
    run_dir: str | Path, *, checkpoint: str | Path, data: Sequence[str], split: str
) -> ScoreTable | None:
    """The table saved by :func:`save_scores`, or None when there is none or it scored something else
    (another checkpoint or a changed one, other data, another split)."""
    path = Path(run_dir) / SCORES_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        same = (raw["split"] == split and raw["data"] == [str(p) for p in data]
                and raw["checkpoint_sha256"] == _fingerprint(Path(checkpoint)))
        return ScoreTable.from_dict(raw) if same else None
    except (ValueError, KeyError, TypeError):  # an older or hand-edited file: score again
        return None


def read_loss_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train/loss": (steps, values), "val/loss": ...}`` from the run's ``logs/metrics.csv``."""
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


def write_report(run_dir: str | Path, *, split: str = "test", log: Callable[[str], Any] | None = None) -> Path:
    """Write ``report.md`` with loss curves, the score table and prediction figures into ``run_dir``.

    The scores come from ``run_dir/scores.json`` when it holds this checkpoint's scores on the recipe's
    data and ``split`` (``spikefm train`` and ``spikefm eval`` write it); otherwise they are computed
    and saved there. The figures need only the first session's predictions. ``log`` is told which.
    """
    from spikefm.eval.plots import plot_curves
    from spikefm.train.data import load_recordings
    from spikefm.train.fit import load_checkpoint

    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoints" / "final.ckpt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{run_dir} has no checkpoints/final.ckpt; is it a `spikefm train` run folder?")
    module, config = load_checkpoint(checkpoint)
    recordings, dataset = load_recordings(config.data, seed=config.trainer.seed)
    table = load_scores(run_dir, checkpoint=checkpoint, data=config.data.paths, split=split)
    if table is None:
        table = score_table(module, config, recordings, dataset=dataset, split=split)
        path = save_scores(table, run_dir, checkpoint=checkpoint, data=config.data.paths)
        message = f"scored {len(recordings)} session(s) on {split} trials; saved to {path}"
    else:
        message = f"scores read from {run_dir / SCORES_FILE} (this checkpoint, data and split)"
    if log is not None:
        log(message)
    lines = [f"# {config.name}: {config.model.name} ({config.model.preset})", "", f"## Scores ({split} trials)", "",
             table.markdown(), ""]
    curves = read_loss_curves(run_dir)
    if curves:
        lines += ["## Loss", "", f"![loss]({plot_curves(curves, run_dir / 'loss.png').name})", ""]
    rec = recordings[0]
    predictions = table.predictions.get(rec.session)
    if predictions is None:
        spec, tokenizer = _spec_and_tokenizer(config)
        predictions = predict(module.model, tokenizer, rec, split=split, window=config.data.window, pack=spec.pack)
    lines += prediction_figures(run_dir, rec.session, predictions, dataset, config.data.window, recording=rec,
                                behavior_key=getattr(module.model, "behavior_target", None))
    report = run_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
