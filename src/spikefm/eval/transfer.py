"""Transfer to an unseen session: one protocol for every decoder.

Pretrain a model on some sessions, then, on a held-out session, score it (``decode R2``:
variance-weighted, at the recorded behaviour samples of the held-out session's test trials) as a function of how many of that session's
trials it may use (its first ``k`` train-split trials, nested as ``k`` grows):

* ``zero_shot``: no gradient step. Only for models with ``calibrate(recording, trials)``
  (SPINT: one IDEncoder forward pass over the ``k`` trials' spikes; their behaviour is not read).
* ``recalibrate``: few-shot recalibration of the session-specific parameters only, on the ``k``
  labelled trials. For models with ``add_session(recording)`` and
  ``freeze_for_recalibration(recording) -> params`` (POYO / POYO+: new unit and session rows),
  or with ``adapt_context(recording) -> params`` (context tokens only, NDT2-style).
* ``finetune``: every parameter, from the pretrained weights, on the ``k`` labelled trials.
* ``scratch``: a fresh model trained on the ``k`` labelled trials alone.
* ``head`` (not run by default): the output head (``readout`` / ``*_head`` / ``*_out`` modules) plus,
  where the model has them, the new session's rows; everything else frozen.

Beside them: ``within`` (the pretrained model on its own pretraining sessions' test trials, the
R2 a transfer method tries to recover) and ``ridge`` (a Wiener filter fitted on the ``k`` trials).
The synthetic generator's sessions (shared latents, different neurons) are the default testbed.

>>> from spikefm.eval.transfer import TransferConfig, run_transfer, write_transfer_report  # doctest: +SKIP
>>> result = run_transfer(TransferConfig(models=["spint", "poyo"]))  # doctest: +SKIP
>>> markdown, figure = write_transfer_report(result, "runs/transfer")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import yaml

from spikefm.data.recording import Recording
from spikefm.eval.baselines import RidgeDecoder, decoder_score
from spikefm.eval.evaluate import predict, score
from spikefm.eval.metrics import DECODE_R2, POSITION_R2
from spikefm.eval.trials import trial_arrays
from spikefm.models.registry import ModelSpec, build_config, get_spec, list_models
from spikefm.tokenize.base import Tokens, collate
from spikefm.train.module import warmup_cosine
from spikefm.train.optim import adamw

__all__ = [
    "CONDITIONS",
    "TransferConfig",
    "TransferRow",
    "TransferResult",
    "run_transfer",
    "load_transfer_recipe",
    "run_transfer_recipe",
    "plot_transfer",
    "write_transfer_report",
    "train_steps",
    "calibration_pool",
]

CONDITIONS = ("zero_shot", "recalibrate", "finetune", "scratch")
ALL_CONDITIONS = (*CONDITIONS, "head")  # "head" runs only when asked (spikefm finetune --mode head)


@dataclass
class TransferConfig:
    """The transfer protocol's settings (a YAML recipe maps onto it key for key).

    Attributes:
        models: registered model names; names not registered are skipped with a note.
        preset: preset of every model.
        model_overrides: per-model config overrides, ``{name: {field: value}}``.
        synthetic: :class:`~spikefm.data.synthetic.SyntheticConfig` overrides for the testbed.
        held_out: session id left out of pretraining; default the last session.
        calibration_trials: the ``k`` values (trials of the held-out session an adaptation may use).
        conditions: which of :data:`CONDITIONS` to run.
        window: seconds per trial window (windows start at trial start).
        pretrain_steps, adapt_steps, scratch_steps: optimizer steps of each phase.
        batch_size: windows per step (fewer when fewer are available).
        sessions_per_batch: pretraining batches come from this many sessions (0: any mix).
        lr, adapt_lr: peak AdamW learning rates of pretraining and of fine-tuning / scratch.
        recalibrate_lr: peak learning rate of recalibration (only embedding rows move).
        weight_decay: AdamW weight decay (0 for recalibrated embedding rows).
        seed: seeds data, initialisation and batches.
        threads: torch CPU threads (0 leaves torch's default).
        out_dir: where reports are written.
    """

    models: list[str] = field(default_factory=lambda: ["poyo", "poyo_plus", "spint", "ndt2_decoder"])
    preset: str = "tiny"
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    synthetic: dict[str, Any] = field(default_factory=lambda: {"n_sessions": 5})
    held_out: str | None = None
    calibration_trials: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    window: float = 1.0
    pretrain_steps: int = 1000
    adapt_steps: int = 200
    scratch_steps: int = 400
    batch_size: int = 32
    sessions_per_batch: int = 2
    lr: float = 2e-3
    adapt_lr: float = 3e-3
    recalibrate_lr: float = 1e-2
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 0
    out_dir: str = "runs/transfer"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.conditions) - set(ALL_CONDITIONS))
        if unknown:
            raise ValueError(f"unknown transfer condition(s) {unknown}; choose from {list(ALL_CONDITIONS)}")
        if not self.models:
            raise ValueError("TransferConfig.models is empty")
        if not self.calibration_trials or min(self.calibration_trials) < 1:
            raise ValueError(f"calibration_trials must be positive trial counts, got {self.calibration_trials}")
        self.calibration_trials = sorted(set(int(k) for k in self.calibration_trials))
        if min(self.pretrain_steps, self.adapt_steps, self.scratch_steps, self.batch_size) < 1:
            raise ValueError("TransferConfig: steps and batch_size must be >= 1")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TransferConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise KeyError(f"unknown transfer config key(s) {unknown}; known: {sorted(known)}")
        return cls(**raw)


@dataclass
class TransferRow:
    """One score: ``model`` adapted by ``condition`` with ``n_trials`` held-out-session trials."""

    model: str
    condition: str
    n_trials: int
    score: float
    metric: str
    steps: int
    seconds: float


@dataclass
class TransferResult:
    """Every score of one protocol run, with the notes on what was skipped and why."""

    config: TransferConfig
    held_out: str
    pretrain_sessions: list[str]
    rows: list[TransferRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def scores(self, model: str, condition: str) -> dict[int, float]:
        return {r.n_trials: r.score for r in self.rows if r.model == model and r.condition == condition}

    def markdown(self) -> str:
        """One row per (model, condition), one column per number of calibration trials."""
        ks = self.config.calibration_trials
        lines = [
            f"Held-out session `{self.held_out}`; pretrained on {', '.join(self.pretrain_sessions)}. "
            "Scores on its test trials (decode R2: variance-weighted over dimensions, at the recorded behaviour "
            "samples) vs calibration trials k.",
            "",
            "| model | condition | metric | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|---|---|" + "---|" * len(ks),
        ]
        seen: list[tuple[str, str]] = []
        for row in self.rows:
            if (row.model, row.condition) not in seen:
                seen.append((row.model, row.condition))
        for model, condition in seen:
            values = self.scores(model, condition)
            metric = next(r.metric for r in self.rows if r.model == model and r.condition == condition)
            cells = [f"{values[k]:.3f}" if k in values else "-" for k in ks]
            lines.append(f"| {model} | {condition} | {metric} | " + " | ".join(cells) + " |")
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    @classmethod
    def from_json(cls, text: str) -> "TransferResult":
        """Rebuild a result from :meth:`to_json` (to re-plot or re-tabulate a finished run)."""
        raw = json.loads(text)
        return cls(TransferConfig.from_dict(raw["config"]), raw["held_out"], raw["pretrain_sessions"],
                   [TransferRow(**row) for row in raw["rows"]], raw["notes"], raw.get("environment", {}))

    def to_json(self) -> str:
        return json.dumps({
            "config": dataclasses.asdict(self.config), "held_out": self.held_out,
            "pretrain_sessions": self.pretrain_sessions, "rows": [dataclasses.asdict(r) for r in self.rows],
            "notes": self.notes, "environment": self.environment,
        }, indent=2)


# ---------------------------------------------------------------------------- training
def train_steps(
    model: torch.nn.Module,
    objective: Callable,
    samples: Sequence[Tokens],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    pack: bool = False,
    params: Sequence[torch.nn.Parameter] | None = None,
    weight_decay: float = 0.0,
    seed: int = 0,
    sessions_per_batch: int = 0,
) -> torch.nn.Module:
    """AdamW with warm-up and cosine decay over ``steps`` random batches of ``samples``.

    Args:
        params: the parameters to optimise (default every parameter that requires grad).
        sessions_per_batch: draw each batch from this many random sessions, equal shares
            (0: uniformly from all windows). Grouping gives every window many same-session
            batch-mates, which SPINT's in-batch calibration reads.
    """
    if not samples:
        raise ValueError("no training windows")
    params = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    optimizer = adamw(params, lr=lr, weight_decay=weight_decay)
    warmup = max(1, min(100, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps=warmup, max_steps=steps, min_lr_ratio=0.05)
    )
    rng = np.random.default_rng(seed)
    draw = _batch_drawer(samples, batch_size, sessions_per_batch, rng)
    model.train()
    for _ in range(steps):
        batch = collate([samples[i] for i in draw()], pack=pack)
        loss, _ = objective(model(batch), batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"transfer training loss is {loss.item()}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    return model


def _batch_drawer(samples: Sequence[Tokens], batch_size: int, sessions_per_batch: int,
                  rng: np.random.Generator) -> Callable[[], np.ndarray]:
    by_session: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        by_session.setdefault(sample.session, []).append(i)
    groups = [np.array(v) for v in by_session.values()]
    if sessions_per_batch <= 0 or len(groups) <= 1:
        return lambda: rng.choice(len(samples), size=min(batch_size, len(samples)), replace=False)
    n_groups = min(sessions_per_batch, len(groups))
    share = max(1, batch_size // n_groups)

    def draw() -> np.ndarray:
        chosen = rng.choice(len(groups), size=n_groups, replace=False)
        return np.concatenate([rng.choice(groups[g], size=min(share, groups[g].size), replace=False) for g in chosen])

    return draw


def calibration_pool(recording: Recording) -> np.ndarray:
    """Trial rows a held-out session offers for adaptation: its train split, in trial order."""
    if recording.trials is None or "split" not in recording.trials.columns:
        raise ValueError(f"{recording.session}: transfer needs trials with a 'split' column")
    return np.flatnonzero(recording.trials.columns["split"].astype(str) == "train")


def _windows(recording: Recording, rows: Sequence[int], tokenizer: Callable, window: float) -> list[Tokens]:
    starts = recording.trials.start[np.asarray(rows, dtype=np.int64)]
    return [tokenizer(recording.window(t0, t0 + window)) for t0 in starts]


# ---------------------------------------------------------------------------- one model
class _ModelRun:
    """Pretrain one model once, then run every condition and k on copies of it."""

    def __init__(self, name: str, config: TransferConfig, pretrain: list[Recording], target: Recording,
                 log: Callable[[str], None], *, model_config: Any = None) -> None:
        self.name, self.cfg, self.pretrain, self.target, self.log = name, config, pretrain, target, log
        self.spec: ModelSpec = get_spec(name)
        self.model_config = model_config if model_config is not None else build_config(
            name, config.preset, **config.model_overrides.get(name, {}))
        self.tokenizer = self.spec.make_tokenizer(self.model_config)
        self.pool = calibration_pool(target)
        self.target_windows = _windows(target, self.pool[: max(config.calibration_trials)], self.tokenizer,
                                       config.window)

    def _build(self, recordings: list[Recording], seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return self.spec.model_cls(self.model_config, **self.spec.sizes_from_data(recordings, self.model_config))

    def _score(self, model: torch.nn.Module, recording: Recording) -> tuple[float, str]:
        scores = score(predict(model, self.tokenizer, recording, split="test", window=self.cfg.window,
                               pack=self.spec.pack))
        metric = next((m for m in (DECODE_R2, POSITION_R2) if m in scores), next(iter(scores)))
        return scores[metric], metric

    def _train(self, model: torch.nn.Module, windows: list[Tokens], steps: int, lr: float, *,
               params=None, weight_decay: float | None = None, sessions_per_batch: int = 0) -> None:
        train_steps(model, self.spec.objective, windows, steps=steps, lr=lr, batch_size=self.cfg.batch_size,
                    pack=self.spec.pack, params=params, seed=self.cfg.seed, sessions_per_batch=sessions_per_batch,
                    weight_decay=self.cfg.weight_decay if weight_decay is None else weight_decay)

    def pretrain_model(self) -> tuple[torch.nn.Module, list[TransferRow]]:
        cfg, start = self.cfg, time.perf_counter()
        model = self._build(self.pretrain, cfg.seed)
        windows = [w for rec in self.pretrain for w in _windows(rec, calibration_pool(rec), self.tokenizer, cfg.window)]
        self._train(model, windows, cfg.pretrain_steps, cfg.lr, sessions_per_batch=cfg.sessions_per_batch)
        seconds = time.perf_counter() - start
        self.log(f"{self.name}: pretrained {cfg.pretrain_steps} steps on {len(windows)} windows in {seconds:.0f} s")
        within = []
        for rec in self.pretrain:
            if hasattr(model, "calibrate"):
                model.calibrate(rec, calibration_pool(rec)[: max(cfg.calibration_trials)].tolist())
            within.append(self._score(model, rec))
        value = float(np.mean([s for s, _ in within]))
        return model, [TransferRow(self.name, "within", k, value, within[0][1], cfg.pretrain_steps, seconds)
                       for k in cfg.calibration_trials]

    def run_condition(self, pretrained: torch.nn.Module, condition: str, k: int) -> TransferRow | None:
        cfg, start = self.cfg, time.perf_counter()
        rows = self.pool[:k].tolist()
        windows = self.target_windows[:k]
        steps = 0
        # New rows (add_session) and dropout draw from torch's global generator: seed it so a condition's
        # score depends on the pretrained weights and the config only (the same in a fresh process).
        torch.manual_seed(cfg.seed)
        if condition == "scratch":
            model = self._build([self.target], cfg.seed + 1)
        else:
            model = copy.deepcopy(pretrained)
        if condition == "zero_shot":
            if not hasattr(model, "calibrate"):
                return None
            model.calibrate(self.target, rows)
        elif condition == "recalibrate":
            params = _recalibration_params(model, self.target)
            if params is None:
                return None
            steps = cfg.adapt_steps
            self._train(model, windows, steps, cfg.recalibrate_lr, params=params, weight_decay=0.0)
        elif condition == "head":
            params = _head_params(model, self.target)
            if params is None:
                return None
            if hasattr(model, "calibrate"):
                model.calibrate(self.target, rows)
            steps = cfg.adapt_steps
            # No weight decay: AdamW would shrink the frozen rows of a partly trainable table.
            self._train(model, windows, steps, cfg.adapt_lr, params=params, weight_decay=0.0)
        else:
            if hasattr(model, "add_session") and condition == "finetune":
                model.add_session(self.target)
            if hasattr(model, "calibrate"):
                model.calibrate(self.target, rows)
            steps = cfg.adapt_steps if condition == "finetune" else cfg.scratch_steps
            self._train(model, windows, steps, cfg.adapt_lr)
        value, metric = self._score(model, self.target)
        self.last_model = model  # the adapted model, for callers that keep it (spikefm finetune --out)
        return TransferRow(self.name, condition, k, value, metric, steps, time.perf_counter() - start)


def _recalibration_params(model: torch.nn.Module, target: Recording) -> list[torch.nn.Parameter] | None:
    """Parameters of the session-specific part only, after making room for the new session."""
    if hasattr(model, "add_session") and hasattr(model, "freeze_for_recalibration"):
        model.add_session(target)
        return list(model.freeze_for_recalibration(target))
    if hasattr(model, "adapt_context"):
        return list(model.adapt_context(target))
    return None


def _is_head(name: str) -> bool:
    return name == "readout" or name.endswith("_head") or name.endswith("_out")


def _head_params(model: torch.nn.Module, target: Recording) -> list[torch.nn.Parameter] | None:
    """The output head's parameters (+ the new session's rows where the model has them); the rest frozen."""
    head = [p for name, child in model.named_children() if _is_head(name) for p in child.parameters()]
    if not head:
        return None
    session = _recalibration_params(model, target) or []  # adds the session's rows and freezes the rest
    if not session:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    for parameter in head:
        parameter.requires_grad_(True)
    return [*session, *head]


def _ridge_rows(config: TransferConfig, target: Recording, pool: np.ndarray) -> list[TransferRow]:
    """A Wiener filter (5 bins of 20 ms history) fitted on the first k trials of the pool."""
    train = trial_arrays(target, split="train", bin_size=0.02, window=config.window)
    test = trial_arrays(target, split="test", bin_size=0.02, window=config.window)
    if train.behavior is None or test.behavior is None:
        return []
    rows = []
    for k in config.calibration_trials:
        start = time.perf_counter()
        decoder = RidgeDecoder(lags=5).fit(train.counts[:k], train.behavior[:k])
        value = decoder_score(decoder.predict(test.counts), test)
        rows.append(TransferRow("ridge", "ridge", k, value, DECODE_R2, 0, time.perf_counter() - start))
    return rows


# ---------------------------------------------------------------------------- protocol
def run_transfer(
    config: TransferConfig | dict[str, Any], *, dataset: Any = None, log: Callable[[str], None] = print
) -> TransferResult:
    """Run the protocol for every model of ``config`` and return all scores.

    Args:
        config: the protocol settings (or a dict of them).
        dataset: a :class:`~spikefm.data.synthetic.SyntheticDataset` (or anything with
            ``.recordings``) to use instead of generating ``config.synthetic``.
        log: progress messages go here.
    """
    cfg = config if isinstance(config, TransferConfig) else TransferConfig.from_dict(config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recordings = _recordings(cfg, dataset)
    held_out = cfg.held_out or recordings[-1].session
    sessions = [r.session for r in recordings]
    if held_out not in sessions:
        raise KeyError(f"held_out session {held_out!r} is not among {sessions}")
    target = recordings[sessions.index(held_out)]
    pretrain = [r for r in recordings if r.session != held_out]
    n_pool = calibration_pool(target).size
    if max(cfg.calibration_trials) > n_pool:
        raise ValueError(
            f"{held_out} has {n_pool} train trials; calibration_trials asks for {max(cfg.calibration_trials)}"
        )
    result = TransferResult(cfg, held_out, [r.session for r in pretrain], environment=_environment())
    available = set(list_models())
    for name in cfg.models:
        if name not in available:
            names = ", ".join(sorted(available))
            result.notes.append(f"{name}: not registered in this build (models: {names}); skipped")
            continue
        _run_model(name, cfg, pretrain, target, result, log)
    result.rows += _ridge_rows(cfg, target, calibration_pool(target))
    return result


def _run_model(name: str, cfg: TransferConfig, pretrain: list[Recording], target: Recording,
               result: TransferResult, log: Callable[[str], None]) -> None:
    run = _ModelRun(name, cfg, pretrain, target, log)
    if run.spec.task != "decoding":
        result.notes.append(f"{name}: a {run.spec.task} model; scored by its own metric, not decode R2")
    pretrained, within = run.pretrain_model()
    result.rows += within
    skipped: set[str] = set()
    for condition in cfg.conditions:
        for k in cfg.calibration_trials:
            row = run.run_condition(pretrained, condition, k)
            if row is None:
                skipped.add(condition)
                break
            result.rows.append(row)
            log(f"{name} {condition} k={k}: {row.metric} {row.score:.3f} ({row.steps} steps, {row.seconds:.1f} s)")
    reasons = {"zero_shot": "needs calibrate(recording, trials)",
               "recalibrate": "needs add_session + freeze_for_recalibration, or adapt_context",
               "head": "has no readout / *_head / *_out module"}
    for condition in sorted(skipped):
        result.notes.append(f"{name}: no {condition} ({reasons.get(condition, 'not supported')})")


def _recordings(cfg: TransferConfig, dataset: Any) -> list[Recording]:
    if dataset is None:
        from spikefm.data.synthetic import SyntheticConfig, generate

        dataset = generate(SyntheticConfig(**{"seed": cfg.seed, **cfg.synthetic}))
    recordings = list(dataset.recordings)
    if len(recordings) < 2:
        raise ValueError("transfer needs at least two sessions (pretraining ones and a held-out one)")
    return recordings


def _environment() -> dict[str, Any]:
    import platform

    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or
            platform.machine(), "python": platform.python_version()}


# ---------------------------------------------------------------------------- recipes and reports
def load_transfer_recipe(path: str | Path, overrides: Sequence[str] = ()) -> TransferConfig:
    """A :class:`TransferConfig` from a YAML recipe plus ``key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"transfer recipe {path} not found (see configs/transfer_synthetic.yaml)")
    raw = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        node, parts = raw, key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return TransferConfig.from_dict(raw)


def plot_transfer(result: TransferResult, out: str | Path) -> Path:
    """Score vs calibration trials: one panel per model, one line per condition, ridge and within for reference."""
    from spikefm.eval.plots import plt

    models = [m for m in dict.fromkeys(r.model for r in result.rows) if m != "ridge"]
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(4.2 * max(1, len(models)), 3.6), squeeze=False,
                             sharey=True)
    ridge = result.scores("ridge", "ridge")
    for ax, model in zip(axes[0], models):
        for i, condition in enumerate(CONDITIONS):
            values = result.scores(model, condition)
            if values:
                ks = sorted(values)
                ax.plot(ks, [values[k] for k in ks], "o-", color=f"C{i}", label=condition)
        within = result.scores(model, "within")
        if within:
            ax.axhline(next(iter(within.values())), color="k", ls=":", lw=1, label="within-session")
        if ridge:
            ks = sorted(ridge)
            ax.plot(ks, [ridge[k] for k in ks], "--", color="0.5", lw=1, label="ridge (k trials)")
        ax.set_xscale("log", base=2)
        ax.set_title(model)
        ax.set_xlabel("calibration trials k")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"{result.rows[0].metric if result.rows else 'score'} on held-out test trials")
    lowest = min((r.score for r in result.rows), default=0.0)
    axes[0, 0].set_ylim(bottom=max(-1.0, lowest - 0.05))  # a failed fit's R2 can run to -inf; keep the curves legible
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [*CONDITIONS, "within-session", "ridge (k trials)"]
    labels = sorted(handles, key=lambda label: order.index(label) if label in order else len(order))
    fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"transfer to {result.held_out}", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_transfer_report(result: TransferResult, out_dir: str | Path | None = None) -> tuple[str, Path]:
    """Write ``transfer.md``, ``transfer.json`` and ``transfer.png`` to ``out_dir``; return (markdown, png)."""
    out = Path(out_dir or result.config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure = plot_transfer(result, out / "transfer.png")
    markdown = result.markdown()
    (out / "transfer.md").write_text(f"# Transfer to {result.held_out}\n\n{markdown}\n\n![curve]({figure.name})\n")
    (out / "transfer.json").write_text(result.to_json())
    return markdown, figure


def run_transfer_recipe(path: str | Path, overrides: Sequence[str] = (), *,
                        log: Callable[[str], None] = print) -> tuple[TransferResult, str, Path]:
    """What ``spikefm transfer RECIPE`` runs: load, run, write the report; returns (result, markdown, png)."""
    config = load_transfer_recipe(path, overrides)
    result = run_transfer(config, log=log)
    markdown, figure = write_transfer_report(result)
    return result, markdown, figure
