"""``spikefm demo``: the main job on built-in data, end to end on a laptop CPU.

Generates the default synthetic multi-session dataset (ground truth included), writes it to
the spikefm store, trains tiny NDT1 (co-smoothing on one session) and tiny POYO (velocity
decoding across all sessions), scores both against the NLB smoothing baseline, the ridge
(Wiener) decoder and the oracle (true rates), and writes a markdown report with figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from spikefm.data.store import write_recording
from spikefm.data.summary import summarize
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.report import ScoreTable, score_table

__all__ = ["run_demo", "demo_recipes"]


def demo_recipes(out: Path, *, seed: int = 0, quick: bool = False) -> dict[str, dict[str, Any]]:
    """The demo's two recipes (the same as ``configs/ndt1_tiny.yaml`` and ``configs/poyo_tiny.yaml``).

    ``quick`` shortens training to a few steps (used by the tests to exercise the whole path).
    """
    common = {"out_dir": str(out / "runs"), "seed": seed, "progress": not quick}
    steps = {"ndt1": 3000, "poyo": 1000} if not quick else {"ndt1": 4, "poyo": 4}
    return {
        "ndt1": {
            "name": "ndt1_tiny", "model": {"name": "ndt1", "preset": "tiny"},
            "data": {"sessions": ["synth-0"], "window": 1.0, "sampler": "trials"},
            "trainer": {**common, "max_steps": steps["ndt1"], "batch_size": 32, "lr": 2e-3, "weight_decay": 0.05,
                        "warmup_steps": 100, "val_every": min(500, steps["ndt1"]), "ema_decay": 0.999},
        },
        "poyo": {
            "name": "poyo_tiny", "model": {"name": "poyo", "preset": "tiny"},
            "data": {"window": 1.0, "sampler": "random", "windows_per_epoch": 512},
            "trainer": {**common, "max_steps": steps["poyo"], "batch_size": 16, "lr": 2e-3, "warmup_steps": 100,
                        "val_every": min(250, steps["poyo"])},
        },
    }


def run_demo(out: Path, *, seed: int = 0, console: Console | None = None, quick: bool = False) -> Path:
    """Run the demo into ``out`` and return the report's path."""
    from spikefm.train.config import RunConfig
    from spikefm.train.fit import fit

    console = console or Console()
    out = Path(out)
    dataset = _write_data(out / "data", seed, console)
    tables: dict[str, ScoreTable] = {}
    for name, raw in demo_recipes(out, seed=seed, quick=quick).items():
        config = RunConfig.from_dict(raw)
        recordings = [r for r in dataset.recordings if not config.data.sessions or r.session in config.data.sessions]
        console.rule(f"training tiny {name} on {len(recordings)} session(s)")
        result = fit(config, recordings=recordings, dataset=dataset)
        tables[name] = score_table(result.module, config, recordings, dataset=dataset)
        console.print(tables[name].markdown())
    report = _write_report(out, tables, dataset)
    console.print(f"\nreport written to {report}")
    return report


def _write_data(data_dir: Path, seed: int, console: Console):
    data_dir.mkdir(parents=True, exist_ok=True)
    with console.status("generating synthetic sessions"):
        dataset = generate(SyntheticConfig(seed=seed))
    for rec in dataset.recordings:
        write_recording(rec, data_dir / f"{rec.session}.h5")
        s = summarize(rec)
        console.print(
            f"{rec.session}: {rec.n_units} units ({s.n_heldout} held-out), {rec.n_spikes:,} spikes, "
            f"{s.n_trials} trials, median rate {s.rate_quantiles[50]:.1f} Hz, "
            f"{s.empty_bin_fraction[0.02]:.0%} empty 20 ms bins -> {data_dir / (rec.session + '.h5')}"
        )
    return dataset


def _write_report(out: Path, tables: dict[str, ScoreTable], dataset) -> Path:
    from spikefm.eval.plots import plot_curves
    from spikefm.eval.report import prediction_figures, read_loss_curves

    lines = ["# spikefm demo", "", "Default synthetic dataset; scores on each session's test trials.", ""]
    for name, table in tables.items():
        lines += [f"## {name} (tiny)", "", table.markdown(), ""]
        curves = read_loss_curves(out / "runs" / f"{name}_tiny")
        if curves:
            lines += [f"![{name} loss]({plot_curves(curves, out / f'{name}_loss.png').name})", ""]
        session, predictions = next(iter(table.predictions.items()))
        lines += prediction_figures(out, session, predictions, dataset, 1.0, prefix=f"{name}_")
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
