"""spikefm command line: demo | synth | inspect | train | eval | report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Spike neural foundation models.")
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write one spikefm store file per session into."),
    sessions: int = typer.Option(4, help="Number of sessions."),
    units: str = typer.Option("40-60", help="Units per session, 'N' or 'MIN-MAX'."),
    trials: int = typer.Option(100, help="Trials per session."),
    system: str = typer.Option("rotational", help="Latent system: rotational or lorenz."),
    seed: int = typer.Option(0, help="Random seed (everything is deterministic given it)."),
    nlb_targets: bool = typer.Option(False, "--nlb-targets", help="Also write NLB evaluation targets per session."),
) -> None:
    """Write a synthetic multi-session dataset with ground truth to OUT."""
    from spikefm.data.store import write_recording
    from spikefm.data.synthetic import SyntheticConfig, generate

    lo, _, hi = units.partition("-")
    try:
        config = SyntheticConfig(
            n_sessions=sessions, units_per_session=(int(lo), int(hi or lo)), n_trials=trials,
            latent_system=system, seed=seed,
        )
    except ValueError as error:
        _fail(str(error))
    with console.status("generating sessions"):
        dataset = generate(config)
    out.mkdir(parents=True, exist_ok=True)
    for rec in dataset.recordings:
        path = write_recording(rec, out / f"{rec.session}.h5")
        console.print(f"wrote {path}  ({rec.n_units} units, {rec.n_spikes:,} spikes, {rec.duration:.0f} s)")
    if nlb_targets:
        from spikefm.eval.nlb_io import write_synthetic_targets

        for path in write_synthetic_targets(dataset, out):
            console.print(f"wrote {path}")
    (out / "synthetic_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))


@app.command()
def inspect(
    file: Path = typer.Argument(
        ..., help="A recording: NWB, spikefm store (.h5), binned counts (.mat/.npz) or a spike-time session."
    ),
    plot: Optional[Path] = typer.Option(None, help="Write a raster with behaviour under it to this PNG."),
    tokens: bool = typer.Option(False, "--tokens", help="Measure every tokenizer on this recording."),
    window: float = typer.Option(1.0, help="Window length (s) for --tokens."),
    bin_size: Optional[float] = typer.Option(None, help="Bin width (s) of a count file that stores no time axis."),
) -> None:
    """Print a readable summary of a recording FILE."""
    from spikefm.data.recording import DataError
    from spikefm.data.store import load
    from spikefm.data.summary import summarize

    try:
        rec = load(file, bin_size=bin_size)
    except (DataError, FileNotFoundError, OSError) as error:
        _fail(str(error))
    _print_summary(summarize(rec))
    if tokens:
        _print_token_table(rec, window)
    if plot is not None:
        from spikefm.eval.plots import plot_raster

        console.print(f"raster written to {plot_raster(rec, plot)}")


def _print_summary(s) -> None:
    table = Table(title=f"{s.session}  ({s.source})", show_header=False)
    table.add_row("subject", s.subject or "-")
    table.add_row("units", f"{s.n_units}  ({s.silent_units} silent, {s.n_heldout} held-out)")
    table.add_row("spikes", f"{s.n_spikes:,}")
    table.add_row("span", f"[{s.start:.3f}, {s.end:.3f}) s = {s.duration:.1f} s")
    if s.binned:
        table.add_row("binned source", f"spike times quantised to {s.binned * 1e3:g} ms bins")
    quantiles = "  ".join(f"p{q}={v:.2f}" for q, v in s.rate_quantiles.items())
    table.add_row("rate (Hz)", quantiles)
    for bin_size, fraction in s.empty_bin_fraction.items():
        table.add_row(f"empty {bin_size * 1e3:g} ms bins", f"{fraction:.1%}")
    if s.regions:
        table.add_row("regions", ", ".join(f"{k}: {v}" for k, v in s.regions.items()))
    table.add_row("trials", str(s.n_trials) + (f"  splits {s.splits}" if s.splits else ""))
    if s.trial_columns:
        table.add_row("trial columns", ", ".join(s.trial_columns))
    for name, (n, dim) in s.behavior.items():
        table.add_row(f"behaviour {name}", f"{n:,} samples x {dim}")
    console.print(table)


def _print_token_table(rec, window: float) -> None:
    from spikefm.tokenize.summary import tokenizer_table

    rows = tokenizer_table(rec, window_length=window)
    table = Table(title=f"tokenizers on {window:g} s windows")
    for column in rows[0]:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()])
    console.print(table)


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (see configs/); not needed with --resume."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value, e.g. --set trainer.max_steps=100."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue a stopped run from its folder (RUN_DIR: its checkpoints/last.ckpt) or a "
        "checkpoint (CKPT), with the recipe stored in it; it ends exactly as an uninterrupted run would."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="torch CPU threads per process (default trainer.threads; 0 = free physical cores)."),
) -> None:
    """Train the model of RECIPE; prints the run folder and the test-split scores.

    Each run writes a new folder (out_dir/NAME, else NAME-1, NAME-2, ...). A checkpoint is saved
    every trainer.checkpoint_every steps and on SIGTERM or Ctrl-C; resume with --resume RUN_DIR.
    """
    from spikefm.train.config import apply_overrides, load_recipe
    from spikefm.train.fit import checkpoint_config, fit

    if resume is not None and recipe is not None:
        _fail("--resume continues the recipe stored in the run; drop RECIPE (change values with --set)")
    if resume is None and recipe is None:
        _fail("give a RECIPE (see configs/), or --resume RUN_DIR to continue a stopped run")
    try:
        config = apply_overrides(checkpoint_config(resume), set_) if resume is not None else load_recipe(recipe, set_)
        if threads is not None:
            config = apply_overrides(config, [f"trainer.threads={threads}"])
    except (KeyError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    result = fit(config, resume=resume)
    if result.interrupted:
        console.print(f"stopped early; checkpoint {result.checkpoint}\nresume with: spikefm train --resume {result.run_dir}")
        raise typer.Exit(code=1)
    console.print(f"run written to {result.run_dir}; checkpoint {result.checkpoint}")
    _print_scores(result.module, config, result.recordings, dataset=result.dataset)


@app.command(name="eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `spikefm train`."),
    data: list[Path] = typer.Option([], help="Recording file(s) to score on; default the recipe's data."),
    split: str = typer.Option("test", help="Trial split to score."),
    out: Optional[Path] = typer.Option(None, help="Write predictions in the NLB submission layout (HDF5)."),
) -> None:
    """Score a trained CHECKPOINT against the baselines (and, on synthetic data, the oracle)."""
    from spikefm.data.recording import DataError
    from spikefm.train.checkpoints import CheckpointError, check_unit_ids
    from spikefm.train.config import DataConfig
    from spikefm.train.data import load_recordings
    from spikefm.train.fit import load_checkpoint

    if not checkpoint.exists():
        _fail(f"checkpoint {checkpoint} not found")
    try:
        module, config = load_checkpoint(checkpoint)  # weights_only: refuses files that would run code
    except CheckpointError as error:
        _fail(str(error))
    data_config = DataConfig(**{**config.data.__dict__, "paths": [str(p) for p in data]}) if data else config.data
    recordings, dataset = load_recordings(data_config, seed=config.trainer.seed)
    try:
        check_unit_ids(module.hparams.get("unit_ids"), recordings)
    except DataError as error:
        _fail(str(error))
    _print_scores(module, config, recordings, dataset=dataset, split=split)
    if out is not None:
        from spikefm.eval.nlb_io import write_submission

        console.print(f"predictions written to {write_submission(module, config, recordings, out)}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `spikefm train`."),
    split: str = typer.Option("test", help="Trial split to score."),
) -> None:
    """Write RUN_DIR/report.md: loss curves, scores against baselines, prediction figures."""
    from spikefm.eval.report import write_report

    try:
        path = write_report(run_dir, split=split)
    except FileNotFoundError as error:
        _fail(str(error))
    console.print(f"report written to {path}")


@app.command()
def transfer(
    recipe: Path = typer.Argument(..., help="Transfer recipe, e.g. configs/transfer_synthetic.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value, e.g. --set pretrain_steps=200."),
) -> None:
    """Pretrain on some sessions, adapt to a held-out one (zero-shot / recalibrate / fine-tune / scratch)."""
    from spikefm.eval.transfer import run_transfer_recipe

    if not recipe.exists():
        _fail(f"recipe {recipe} not found")
    try:
        _, markdown, figure = run_transfer_recipe(recipe, set_, log=console.print)
    except (KeyError, ValueError) as error:
        _fail(str(error))
    console.print(markdown)
    console.print(f"curve written to {figure}")


def _print_scores(module, config, recordings, *, dataset=None, split: str = "test") -> None:
    from spikefm.eval.report import score_table

    table = score_table(module, config, recordings, dataset=dataset, split=split)
    console.print(table.markdown())


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo writes its data, runs and report."),
    seed: int = typer.Option(0, help="Random seed."),
    quick: bool = typer.Option(False, "--quick", help="Shorter training (about half the time; scores a little lower)."),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0 = free physical cores)."),
) -> None:
    """Generate synthetic sessions, train tiny NDT1 and POYO, score them against baselines, write a report."""
    from spikefm.demo import DemoInterrupted, run_demo

    try:
        run_demo(out, seed=seed, console=console, quick=quick, threads=threads)
    except DemoInterrupted as stop:
        console.print(str(stop))
        raise typer.Exit(code=1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
