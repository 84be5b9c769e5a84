"""``spikefm demo``: the main job on built-in data, end to end on a laptop CPU.

Generates a synthetic multi-session dataset with ground truth, writes it to the spikefm
store, scores the baselines and the oracle on a held-out split, and writes a report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from spikefm.data.store import write_recording
from spikefm.data.summary import summarize
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.scoreboard import baseline_scores, format_table, oracle_row, split_arrays

__all__ = ["run_demo", "BIN_SIZE", "WINDOW"]

BIN_SIZE = 0.02  # s; the NDT / NLB 20 ms bins
WINDOW = 1.0  # s; one synthetic trial


def run_demo(out: Path, *, seed: int = 0, console: Console | None = None) -> Path:
    """Run the demo into ``out`` and return the report's path."""
    console = console or Console()
    out = Path(out)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with console.status("generating synthetic sessions"):
        dataset = generate(SyntheticConfig(seed=seed))
    for rec in dataset.recordings:
        write_recording(rec, data_dir / f"{rec.session}.h5")
        s = summarize(rec)
        console.print(
            f"{rec.session}: {rec.n_units} units ({s.n_heldout} held-out), {rec.n_spikes:,} spikes, "
            f"{s.n_trials} trials, median rate {s.rate_quantiles[50]:.1f} Hz, "
            f"{s.empty_bin_fraction[0.02]:.0%} empty 20 ms bins"
        )
    rec = dataset.recordings[0]
    train, test = split_arrays(rec, bin_size=BIN_SIZE, window=WINDOW)
    rows = baseline_scores(train, test)
    true_counts = [
        np.stack([dataset.true_rate_counts(0, BIN_SIZE, t0, t0 + WINDOW) for t0 in arrays.starts])
        for arrays in (train, test)
    ]
    rows["oracle (true rates)"] = oracle_row(true_counts[0], true_counts[1], train, test)
    table = format_table(rows)
    console.print(f"\nScores on {rec.session}'s test trials ({len(test.starts)} trials, 20 ms bins):\n{table}")
    report = out / "report.md"
    report.write_text(f"# spikefm demo\n\nData: {data_dir}\n\n## Scores ({rec.session}, test trials)\n\n{table}\n")
    from spikefm.eval.plots import plot_raster

    plot_raster(rec, out / "raster.png", t0=rec.start, t1=rec.start + 5.0)
    console.print(f"\nreport written to {report}")
    return report
