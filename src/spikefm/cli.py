"""spikefm command line: demo | synth | inspect | train | eval | report | transfer | bench."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spikefm.cli_errors import ErrorReportingGroup

# Every command reports bad input as one `error: ...` line (rc 2); `--debug` anywhere shows the traceback.
app = typer.Typer(
    cls=ErrorReportingGroup, add_completion=False, no_args_is_help=True,
    help="Spike neural foundation models. Add --debug to any command to see a failure's full traceback.",
)
console = Console()


def _plain(*objects: object) -> None:
    """Print without rich markup: row names such as ``unified [identity=table]`` would read as a markup tag."""
    console.print(*objects, markup=False)


def _version(value: bool) -> None:
    if value:
        from spikefm import __version__

        console.print(f"spikefm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print spikefm's version and exit."
    ),
) -> None:
    """Spike neural foundation models."""


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
    groups: int = typer.Option(0, help="> 0: a heterogeneous corpus of this many generating groups (see below)."),
    systems: str = typer.Option("rotational,lorenz", help="With --groups: latent systems the groups cycle through."),
    rates: str = typer.Option("1-40", help="With --groups: firing-rate range (Hz) the groups draw from."),
    noise: str = typer.Option("0.05-0.4", help="With --groups: single-trial latent noise range."),
    drift: str = typer.Option("0-0.3", help="With --groups: unit drift range."),
) -> None:
    """Write a synthetic multi-session dataset with ground truth to OUT.

    With --groups N the sessions come from N groups that differ in latent system, dynamics, unit
    counts, rates, noise, drift and regions (spikefm.data.synthetic_corpus): a corpus to pretrain and
    curate on. Sessions are written one group at a time.
    """
    from spikefm.data.store import write_recording
    from spikefm.data.synthetic import SyntheticConfig, generate

    if groups > 0:
        _synth_corpus(out, sessions, units, trials, seed, groups, systems, rates, noise, drift)
        return
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
    console.print(f"train on them: spikefm train configs/poyo_tiny.yaml --data {out / '*.h5'}", soft_wrap=True)


def _range(text: str, cast=float) -> tuple:
    lo, _, hi = text.partition("-")
    return cast(lo), cast(hi or lo)


def _synth_corpus(out: Path, sessions: int, units: str, trials: int, seed: int, groups: int, systems: str,
                  rates: str, noise: str, drift: str) -> None:
    from spikefm.data.store import write_recording
    from spikefm.data.synthetic_corpus import CorpusSynthConfig, iter_corpus

    try:
        config = CorpusSynthConfig(
            n_sessions=sessions, groups=groups, systems=tuple(s.strip() for s in systems.split(",") if s.strip()),
            units=_range(units, int), rates=_range(rates), noise=_range(noise), drift=_range(drift),
            n_trials=trials, seed=seed,
        )
    except ValueError as error:
        _fail(str(error))
    out.mkdir(parents=True, exist_ok=True)
    for rec in iter_corpus(config):
        path = write_recording(rec, out / f"{rec.session}.h5")
        console.print(f"wrote {path}  ({rec.n_units} units, {rec.n_spikes:,} spikes, group {rec.metadata['group']})")
    (out / "corpus_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))


@app.command()
def inspect(
    file: Path = typer.Argument(
        ..., help="A recording: NWB, spikefm store (.h5), binned counts (.mat/.npz), a spike-time session, FALCON, "
        "temporaldata, a Kilosort/Phy folder or a Blackrock/Plexon file (see docs/formats.md)."
    ),
    plot: Optional[Path] = typer.Option(None, help="Write a raster with behaviour under it to this PNG."),
    tokens: bool = typer.Option(False, "--tokens", help="Measure every tokenizer on this recording."),
    window: float = typer.Option(1.0, help="Window length (s) for --tokens."),
    bin_size: Optional[float] = typer.Option(None, help="Bin width (s) of a count file that stores no time axis."),
    start: Optional[float] = typer.Option(
        None, help="Start (s) of the --plot window; default the first stretch with spikes."
    ),
    length: float = typer.Option(10.0, help="Length (s) of the --plot window."),
) -> None:
    """Print a readable summary of a recording FILE."""
    if window <= 0:
        _fail(f"--window must be > 0 seconds, got {window:g}")
    from spikefm.data.recording import DataError
    from spikefm.data.store import load
    from spikefm.data.summary import summarize

    if not length > 0:
        _fail(f"--length must be > 0 seconds, got {length}")
    try:
        rec = load(file, bin_size=bin_size)
    except (DataError, FileNotFoundError, OSError) as error:
        _fail(str(error))
    _print_summary(summarize(rec))
    if tokens:
        _print_token_table(rec, window)
    if plot is not None:
        from spikefm.eval.plots import plot_raster, spike_window

        t0 = spike_window(rec, length) if start is None else start
        if not rec.start <= t0 < rec.end:
            _fail(f"--start {t0:g} s is outside the recording's span [{rec.start:.3f}, {rec.end:.3f}) s")
        path = plot_raster(rec, plot, t0=t0, t1=t0 + length)
        console.print(f"raster of [{t0:.2f}, {t0 + length:.2f}) s written to {path}")


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
    from spikefm.tokenize.summary import TOKEN_COLUMNS, tokenizer_table

    rows = tokenizer_table(rec, window_length=window)
    table = Table(title=f"tokenizers on {window:g} s windows", title_justify="left")
    for header, *_ in TOKEN_COLUMNS:
        table.add_column(header, justify="left" if header == "tokenizer" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*[render(row) for _, render, _ in TOKEN_COLUMNS])
    console.print(table)
    for header, _, note in TOKEN_COLUMNS[1:]:
        console.print(Text.assemble((f"{header}: ", "bold"), note))


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (see configs/); not needed with --resume."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value, e.g. --set trainer.max_steps=100."),
    data: list[Path] = typer.Option(
        [], "--data", help="Recording file(s) to train on (sets data.paths), e.g. --data data/*.h5."
    ),
    more_data: Optional[list[Path]] = typer.Argument(
        None, metavar="FILE", show_default=False, help="More recording files (what --data data/*.h5 expands to)."
    ),
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
    from spikefm.train.preflight import check_recipe

    if resume is not None and recipe is not None:
        _fail("--resume continues the recipe stored in the run; drop RECIPE (change values with --set)")
    if resume is None and recipe is None:
        _fail("give a RECIPE (see configs/), or --resume RUN_DIR to continue a stopped run")
    files = [str(path) for path in [*data, *(more_data or [])]]
    # --data is the override data.paths=[...], checked like any other
    overrides = [*set_, *([f"data.paths={json.dumps(files)}"] if files else [])]
    overrides += [f"trainer.threads={threads}"] if threads is not None else []
    config = apply_overrides(checkpoint_config(resume), overrides) if resume is not None else load_recipe(recipe, overrides)
    check_recipe(config)  # a bad name, key, path, out_dir or accelerator fails here, before any data is read
    result = fit(config, resume=resume)
    if result.interrupted:
        console.print(f"stopped early; checkpoint {result.checkpoint}\nresume with: spikefm train --resume {result.run_dir}")
        raise typer.Exit(code=1)
    console.print(f"run written to {result.run_dir}; checkpoint {result.checkpoint}")
    _print_scores(result.module, config, result.recordings, dataset=result.dataset,
                  save_to=result.run_dir, checkpoint=result.checkpoint)


@app.command(name="eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `spikefm train`."),
    data: list[Path] = typer.Option([], help="Recording file(s) to score on; default the recipe's data."),
    split: str = typer.Option("test", help="Trial split to score."),
    out: Optional[Path] = typer.Option(None, help="Write predictions in the NLB submission layout (HDF5)."),
    nlb_dataset: Optional[str] = typer.Option(None, help="NLB dataset the data is (default: from the file names)."),
    nlb_phase: str = typer.Option("test", help="NLB phase: 'val' (train / val trials) or 'test' (train+val / test)."),
) -> None:
    """Score a trained CHECKPOINT against the baselines (and, on synthetic data, the oracle)."""
    from spikefm.data.recording import DataError
    from spikefm.train.checkpoints import check_unit_ids
    from spikefm.train.data import load_recordings
    from spikefm.train.preflight import check_split, check_writable_file, read_checkpoint

    if out is not None:
        check_writable_file(out, "--out")  # before minutes of scoring, not after
    module, config = read_checkpoint(checkpoint)
    data_config = dataclasses.replace(config.data, paths=[str(p) for p in data]) if data else config.data
    recordings, dataset = load_recordings(data_config, seed=config.trainer.seed)
    check_unit_ids(module.hparams.get("unit_ids"), recordings)  # same session name, other neurons: refuse
    check_split(recordings, split)
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" and not data else None
    _print_scores(module, config, recordings, dataset=dataset, split=split, save_to=run_dir, checkpoint=checkpoint)
    from spikefm.eval.nlb_io import nlb_cli_report

    try:
        console.print(nlb_cli_report(module, config, recordings, dataset=nlb_dataset, phase=nlb_phase, out=out))
    except (DataError, KeyError, ValueError) as error:
        if out is not None:
            _fail(f"cannot write an NLB submission: {error}")
        console.print(f"NLB metrics not computed: {error}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `spikefm train`."),
    split: str = typer.Option("test", help="Trial split to score."),
) -> None:
    """Write RUN_DIR/report.md: loss curves, scores against baselines, prediction figures."""
    from spikefm.eval.report import write_report

    try:
        path = write_report(run_dir, split=split, log=console.print)
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


@app.command()
def falcon(
    files: list[Path] = typer.Argument(..., help="FALCON NWB files: held-in / held-out calib, minival / eval."),
    model: str = typer.Option("spint", help="A registered decoder."),
    set_: list[str] = typer.Option([], "--set", help="A FalconProtocol field, e.g. --set train_steps=500."),
) -> None:
    """Train MODEL on FALCON's held-in sessions, adapt to the held-out ones, print FALCON's masked R2."""
    from spikefm.data.recording import DataError
    from spikefm.eval.falcon import run_falcon_files

    try:
        console.print(run_falcon_files(files, model, set_, log=console.print))
    except (DataError, KeyError, ValueError) as error:
        _fail(str(error))


@app.command()
def pretrain(
    recipe: Path = typer.Argument(..., help="Training recipe (see configs/), e.g. configs/poyo_tiny.yaml."),
    corpus: Optional[Path] = typer.Option(None, help="Folder or manifest of recordings; default the recipe's data."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value, e.g. --set trainer.max_steps=100."),
    devices: Optional[int] = typer.Option(None, help="Processes / devices; > 1 trains with DDP (gloo on CPU)."),
    out: Optional[Path] = typer.Option(None, help="Pretrained folder to write; default RUN_DIR/pretrained."),
) -> None:
    """Pretrain RECIPE's model on a corpus and write it with save_pretrained (safetensors + config + card)."""
    from spikefm.data.recording import DataError
    from spikefm.train.config import load_recipe
    from spikefm.train.finetune import pretrain as run_pretrain

    overrides = list(set_)
    if devices is not None:
        overrides += [f"trainer.devices={devices}"] + (["trainer.strategy=ddp"] if devices > 1 else [])
    try:
        config = load_recipe(recipe, overrides)
        result = run_pretrain(config, corpus=corpus, out=out)
    except (KeyError, ValueError, FileNotFoundError, DataError) as error:
        _fail(str(error))
    if result.pretrained_dir is not None:
        console.print(f"run written to {result.run_dir}; pretrained model in {result.pretrained_dir}")


@app.command()
def finetune(
    source: Path = typer.Argument(..., help="A pretrained folder (spikefm pretrain) or a checkpoint (spikefm train)."),
    data: Path = typer.Option(..., help="The new session's recording (with trials and a split column)."),
    mode: str = typer.Option("recalibrate", help="zero-shot | recalibrate | head | full."),
    trials: int = typer.Option(16, help="Train trials of the new session the adaptation may read (k)."),
    set_: list[str] = typer.Option([], "--set", help="Adaptation settings, e.g. --set adapt_steps=100."),
    out: Optional[Path] = typer.Option(None, help="Save the adapted model here (save_pretrained)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the score row as JSON here."),
) -> None:
    """Adapt a pretrained model to a new session in this process and score it on its test trials."""
    import yaml

    from spikefm.data.recording import DataError
    from spikefm.train.finetune import finetune as run_finetune

    settings = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--set {item!r} must look like key=value")
        settings[key.strip()] = yaml.safe_load(value)
    try:
        result = run_finetune(source, data, mode=mode, trials=trials, settings=settings, out=out, log=console.print)
    except (KeyError, ValueError, FileNotFoundError, DataError) as error:
        _fail(str(error))
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(result.row), indent=2))
    if result.out_dir is not None:
        console.print(f"adapted model written to {result.out_dir}")


@app.command()
def curate(
    target: str = typer.Option(..., help="The target session: a recording file, or a session id in the corpus."),
    corpus: Path = typer.Option(..., help="Folder or manifest of candidate recordings."),
    k: int = typer.Option(8, help="Sessions to keep."),
    out: Path = typer.Option(Path("curated.json"), help="Manifest to write (use it as --corpus of pretrain)."),
    trials: int = typer.Option(20, help="Train trials per session read for the statistics."),
) -> None:
    """Rank CORPUS's sessions by population-statistics similarity to TARGET; write the top-k manifest."""
    from spikefm.data.curation import curate as run_curate
    from spikefm.data.recording import DataError

    try:
        path, ranking = run_curate(target, corpus, k, out, n_trials=trials)
    except (DataError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    table = Table(title=f"closest sessions to {target}")
    table.add_column("rank")
    table.add_column("session")
    table.add_column("distance")
    for i, row in enumerate(ranking[:k], 1):
        table.add_row(str(i), row.session, f"{row.distance:.3f}")
    console.print(table)
    console.print(f"manifest of {min(k, len(ranking))} sessions written to {path}")


def _print_scores(
    module, config, recordings, *, dataset=None, split: str = "test", save_to: Optional[Path] = None,
    checkpoint: Optional[Path] = None,
) -> None:
    """Score and print the table; with ``save_to``, also save it there for ``spikefm report``."""
    from spikefm.eval.report import save_scores, score_table

    table = score_table(module, config, recordings, dataset=dataset, split=split)
    console.print(table.rich())
    if save_to is not None and checkpoint is not None:
        try:
            save_scores(table, save_to, checkpoint=checkpoint, data=config.data.paths)
        except OSError as error:  # the scores are printed; `spikefm report` will score again
            console.print(f"[yellow]warning:[/] scores not saved in {save_to}: {error}")


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


@app.command()
def bench(
    target: Optional[str] = typer.Argument(
        None, help="'synthetic' or 'synthetic-lorenz' (sealed synthetic tests) or a recipe .yaml."),
    data: Optional[Path] = typer.Option(None, "--data", help="Run the protocol on this recording file instead."),
    quick: bool = typer.Option(False, "--quick", help="CI-sized budget (a few steps, 2 trials, 2 seeds)."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Search trials per candidate (default 8)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Training seeds of the chosen config (default 3)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Longest training run a search may choose."),
    models: Optional[str] = typer.Option(None, help="Comma-separated models (default: the suite's; '' for baselines only)."),
    behavior: Optional[str] = typer.Option(None, help="Behaviour to decode with --data (default the first)."),
    block: float = typer.Option(1.0, help="Block length (s) for a continuous --data recording."),
    out: Path = typer.Option(Path("runs/bench"), help="Results folder (JSON + markdown); cache under it."),
    co_bps_bin: Optional[float] = typer.Option(
        None, help="Seconds per co-smoothing bin, also of MtM's masked tasks (default 0.02, or a binned --data "
                   "file's bins; 0.05 for unified:co-bps and unified:forward_pred)."),
    draws: Optional[str] = typer.Option(
        None, help="Comma-separated generator seeds of a synthetic suite's sealed draws (default 1001,1002,1003)."),
    ks: Optional[str] = typer.Option(
        None, "--ks", help="Transfer suites: comma-separated numbers of the new session's trials (default 8,32)."),
    transfer_from: Optional[List[Path]] = typer.Option(
        None, "--transfer-from", help="With --data NEW: pretrain on this recording, transfer to NEW; repeatable."),
    merge: Optional[List[Path]] = typer.Option(
        None, "--merge", help="Combine these results JSONs into one table (<out>/merged.json and .md); repeatable."),
    into: Optional[List[Path]] = typer.Option(
        None, "--into", help="With --merge: rewrite the marked model table of this markdown file; repeatable."),
    threads: int = typer.Option(
        1, "--threads", min=1, help="torch CPU threads for every row (default 1: multi-threaded CPU training is not "
                                    "bit-reproducible between processes, so two processes sharing a cache could disagree)."),
) -> None:
    """Choose on validation, score the test split once, with seeds and 95% intervals (spikefm.eval.protocol)."""
    from spikefm.data.recording import DataError
    from spikefm.eval.bench import merge_results, run_bench

    if merge:
        try:
            json_path, md_path, _ = merge_results(merge, out, into or [])
        except (ValueError, FileNotFoundError, KeyError) as error:
            _fail(str(error))
        _plain(md_path.read_text())
        console.print(f"merged table written to {json_path} and {md_path}")
        return
    if target is None and data is None:
        _fail("give a suite ('synthetic'), a recipe .yaml, or --data FILE")
    import torch

    torch.set_num_threads(threads)  # every candidate trains with the process's count (recorded in the results)
    try:
        json_path, md_path, _ = run_bench(
            target, data=data, quick=quick, trials=budget, seeds=seeds, max_steps=steps,
            models=[m for m in models.split(",") if m] if models is not None else None, out=out, behavior_key=behavior, block=block,
            draws=_int_list(draws, "--draws") if draws is not None else None, co_bps_bin=co_bps_bin,
            ks=_int_list(ks, "--ks") if ks is not None else None, transfer_from=transfer_from or (), log=_plain,
            command=_invocation(),
        )
    except (DataError, ValueError, FileNotFoundError) as error:
        _fail(str(error))
    _plain(md_path.read_text())
    console.print(f"results written to {json_path} and {md_path}")


def _invocation() -> str | None:
    """The command line as typed (``spikefm ...`` or ``python -m spikefm.cli ...``); None when called in-process."""
    if Path(sys.argv[0]).name not in ("spikefm", "cli.py"):
        return None
    return shlex.join(["spikefm", *sys.argv[1:]])


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        _fail(f"{option} takes comma-separated integers, got {text!r}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
