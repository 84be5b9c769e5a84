"""Run recipes: YAML -> typed dataclasses, with ``--set key=value`` overrides.

A recipe has four sections (``data``, ``model``, ``tokenizer``, ``trainer``). Unknown keys are
an error, never silently ignored. Values are validated and coerced against the field types by
pydantic (the sections are pydantic dataclasses): ``lr: 1e-3`` (a string to PyYAML) becomes a
float, a single string given for a list field becomes a one-item list, and a value of the wrong
type is a :class:`ConfigError` naming the key.

>>> cfg = RunConfig.from_dict({"model": {"name": "ndt1"}, "trainer": {"max_steps": 10}})
>>> cfg.trainer.max_steps, cfg.model.preset
(10, 'tiny')
>>> apply_overrides(cfg, ["trainer.lr=0.01", "model.overrides.dim=32"]).trainer.lr
0.01
>>> apply_overrides(cfg, ["trainer.lr=1e-3", "data.sessions=synth-0"]).data.sessions
['synth-0']
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml
from pydantic import BeforeValidator, ConfigDict
from pydantic.dataclasses import dataclass as _pydantic_dataclass

BF16_MATMUL = "bf16-matmul"  # trainer.precision: float32 run, linears multiplied in bf16 (spikefm.nn.bf16_matmul)

__all__ = [
    "ConfigError", "DataConfig", "ModelSection", "TrainerConfig", "RunConfig", "load_recipe", "apply_overrides",
]


class ConfigError(ValueError):
    """A recipe value or key that spikefm cannot use; the message names the key and what is accepted."""


def _one_item_list(value: Any) -> Any:
    # `--set data.sessions=synth-0` and `paths: /x.h5` mean a list of one, not a list of characters.
    return [value] if isinstance(value, (str, Path)) else value


def _empty_mapping(value: Any) -> Any:
    return {} if value is None else value  # `overrides:` with nothing under it in YAML


StrList = Annotated[list[str], BeforeValidator(_one_item_list)]
"""A list of strings; a single string is read as a one-item list."""
Mapping = Annotated[dict[str, Any], BeforeValidator(_empty_mapping)]
"""A free-form mapping (checked later by whatever reads it); YAML ``null`` is an empty one."""

# Recipe sections: typed (lax coercion: "1e-3" -> 0.001, "false" -> False, session 7 -> "7"),
# unknown keys forbidden.
# A new setting is one annotated line in its section.
section = _pydantic_dataclass(config=ConfigDict(extra="forbid", coerce_numbers_to_str=True))


@section
class DataConfig:
    """Where the recordings come from and how windows are cut.

    Attributes:
        paths: recording files (NWB or spikefm store); empty means synthetic data.
        synthetic: overrides for :class:`spikefm.data.synthetic.SyntheticConfig` when ``paths`` is empty.
        sessions: keep only these session ids (all when empty).
        window: window length in seconds for training.
        sampler: "trials" (trial-aligned windows) or "random" (random windows).
        align: trial column to align windows to (``start`` = trial start).
        before: seconds before the alignment event where a window starts.
        windows_per_epoch: random windows per epoch (``sampler: random``).
    """

    paths: StrList = field(default_factory=list)
    synthetic: Mapping = field(default_factory=dict)
    sessions: StrList = field(default_factory=list)
    window: float = 1.0
    sampler: str = "trials"
    align: str = "start"
    before: float = 0.0
    windows_per_epoch: int = 512

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"data.window must be > 0 seconds, got {self.window}")
        if self.sampler not in ("trials", "random"):
            raise ValueError(f"data.sampler must be 'trials' or 'random', got {self.sampler!r}")


@section
class ModelSection:
    """Which registered model, which preset, which config fields to change."""

    name: str = "ndt1"
    preset: str = "tiny"
    overrides: Mapping = field(default_factory=dict)


@section
class TrainerConfig:
    """Optimisation and bookkeeping.

    Attributes:
        max_steps: optimizer steps.
        batch_size: windows per batch (per device under DDP).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps before cosine decay to ``lr * min_lr_ratio``.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        grad_clip: max gradient norm (0 disables).
        precision: Lightning precision; "auto" = bf16-mixed on GPU, 32 on CPU. ``"bf16-matmul"``
            (CPU): a float32 run whose linears multiply in bf16 (:mod:`spikefm.nn.bf16_matmul`),
            faster where the CPU has bf16 dot products (AVX-512-BF16, AMX) and where autocast is not.
        seed: seeds python, numpy and torch (and window sampling).
        val_every: validate every this many steps.
        early_stopping_patience: stop after this many validations without improvement (0 disables).
        ema_decay: keep an exponential moving average of the weights with this decay (0 disables);
            validation, the final weights and checkpoints then use the average.
        keep_best: a logged validation metric (e.g. "val/loss"); after training the weights from
            the validation with its lowest value are restored ("" keeps the last weights).
        accelerator, devices, strategy: passed to ``lightning.Trainer`` (DDP: ``strategy: ddp``).
        num_nodes: machines in a multi-node run (torchrun / SLURM; docs/training_at_scale.md).
        num_workers: DataLoader workers (tokenizers run there, on CPU).
        out_dir: where runs are written: ``out_dir/<name>``, or ``out_dir/<name>-1``, ``-2``, ... when
            that folder already exists (a run never overwrites another).
        progress: show progress (steps / max_steps, loss, ETA; a line every 30 s when not on a terminal).
        threads: torch CPU threads per process; 0 = automatic (free physical cores, split between
            the DDP processes of this machine; see :mod:`spikefm.train.threads`).
        checkpoint_every: write ``checkpoints/last.ckpt`` every this many steps (0: only on SIGTERM /
            SIGINT, which always save one); ``spikefm train --resume`` continues from it exactly.
    """

    max_steps: int = 500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    precision: str = "auto"
    seed: int = 0
    val_every: int = 100
    early_stopping_patience: int = 0
    ema_decay: float = 0.0
    keep_best: str = ""
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    num_workers: int = 0
    out_dir: str = "runs"
    progress: bool = True
    threads: int = 0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.precision == BF16_MATMUL and self.accelerator not in ("auto", "cpu"):
            raise ValueError(f"trainer.precision {BF16_MATMUL!r} is for CPU runs (accelerator {self.accelerator!r}); "
                             "use 'bf16-mixed' on GPUs")
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"trainer.max_steps and trainer.batch_size must be >= 1, got {self.max_steps} and {self.batch_size}"
            )
        if self.lr <= 0:
            raise ValueError(f"trainer.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"trainer.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.threads < 0 or self.checkpoint_every < 0:
            raise ValueError(f"trainer.threads and trainer.checkpoint_every must be >= 0, got {self.threads}, "
                             f"{self.checkpoint_every}")
        if self.keep_best and not self.keep_best.startswith("val/"):
            raise ValueError(f"trainer.keep_best must name a validation metric ('val/...'), got {self.keep_best!r}")


@section
class RunConfig:
    """A whole recipe."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    tokenizer: Mapping = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        return _build(cls, raw, "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelSection, "trainer": TrainerConfig}


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    """``cls(**raw)``: unknown keys a KeyError, badly typed values a :class:`ConfigError` naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config section '{where or 'root'}' must be a mapping, got {type(raw).__name__} {raw!r}")
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = set(raw) - set(fields)
    if unknown:
        raise KeyError(f"unknown config key(s) {sorted(unknown)} in '{where or 'root'}'; known: {sorted(fields)}")
    kwargs = {
        name: _build(_SECTIONS[name], value or {}, name) if cls is RunConfig and name in _SECTIONS else value
        for name, value in raw.items()
    }
    try:
        return cls(**kwargs)
    except pydantic.ValidationError as error:
        raise ConfigError(_describe(error, where)) from None


def _describe(error: pydantic.ValidationError, where: str) -> str:
    """One line per bad value: ``trainer.lr: Input should be a valid number (got 'abc')``."""
    lines = []
    for item in error.errors():
        if not item["loc"]:  # raised by a section's __post_init__, whose message names the key already
            lines.append(str(item["ctx"]["error"]) if "ctx" in item else item["msg"])
            continue
        key = ".".join([where, *map(str, item["loc"])] if where else map(str, item["loc"]))
        lines.append(f"{key}: {item['msg']} (got {item['input']!r})")
    return "; ".join(lines)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML recipe and apply ``key=value`` overrides."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recipe {path} not found; recipes ship in the repository's configs/ folder")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"recipe {path}: YAML syntax error{where}: {problem}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path}: must be a mapping of sections (data, model, tokenizer, trainer)")
    raw.setdefault("name", path.stem)
    return apply_overrides(RunConfig.from_dict(raw), overrides)


def apply_overrides(config: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """Return a new config with dotted ``section.key=value`` overrides (values parsed as YAML)."""
    raw = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, value = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = raw
        for key in keys[:-1]:
            if key not in node or not isinstance(node[key], dict):
                raise KeyError(f"override {dotted!r}: no section '{key}'")
            node = node[key]
        free_form = keys[-2:-1] in (["overrides"], ["synthetic"]) or keys[:1] == ["tokenizer"]
        if keys[-1] not in node and not free_form:
            raise KeyError(f"override {dotted!r}: unknown key '{keys[-1]}'; known: {sorted(node)}")
        try:
            node[keys[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", error)
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem})") from None
    return RunConfig.from_dict(raw)
