"""POYO+ (Azabou, Pan et al. 2025): POYO with several behaviour tasks read out by task queries.

The encoder is POYO's (per-spike tokens = unit + token-type embedding, latents every
``latent_step`` s, PerceiverIO with rotary time). What changes is the read-out: every output
query is the session's embedding **plus a task embedding**, and each task has its own linear
head - MSE for a continuous task (``hand_vel``), cross-entropy for a class task (a trial's
``condition``). Sessions may carry different tasks: a session without a task's labels simply
has no queries of that task, and the batch loss is each task's mean loss weighted by the
number of windows that carry the task (torch_brain's ``examples/poyo_plus/train.py``).

Task specs (kind and output width) are part of the model, as torch_brain's modality registry
makes them: ``tasks={"hand_vel": "continuous:2", "condition": "class:8"}``; ``_sizes`` checks
the recordings agree. The tokenizer (:class:`MultiTaskTokenizer`) writes every task's queries
into one query list; ``targets[TASK_KEY]`` holds each query's task index and ``targets[task]``
its labels (NaN on other tasks' queries).

Source: neuro-galaxy/torch_brain before PR #230, ``torch_brain/models/poyo_plus.py``,
``nn/multitask_readout.py``, ``examples/poyo_plus/train.py``,
``examples/poyo_plus/configs/model/calcium_poyo_plus.yaml``; paper ICLR 2025
(openreview IuU0wcO0mo).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikefm.data.recording import DataError, Recording, Window
from spikefm.models._shared import unit_dropout_keep
from spikefm.models.poyo import POYO, POYOConfig
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.identity import KeyedEmbedding
from spikefm.nn.perceiver import latent_grid
from spikefm.objectives.behavior import behavior_mse
from spikefm.tokenize.base import Batch, QueryConfig, Tokens, make_queries
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = [
    "TASK_KEY",
    "TaskSpec",
    "parse_tasks",
    "POYOPlusConfig",
    "POYOPlus",
    "MultiTaskConfig",
    "MultiTaskTokenizer",
    "poyo_plus_objective",
    "PRESETS",
]

TASK_KEY = "query_task"
"""``Tokens.targets`` / ``Batch.targets`` key of each query's task index (float [Q, 1])."""

TASK_KINDS = ("continuous", "class")
_HEAD_PREFIX = {"continuous": "values", "class": "logits"}  # output key of each task kind's head


@dataclass(frozen=True)
class TaskSpec:
    """One read-out task: ``kind`` "continuous" (``dim`` output columns, MSE) or "class" (``dim`` classes, CE)."""

    name: str
    kind: str
    dim: int


def parse_tasks(tasks: dict[str, str]) -> tuple[TaskSpec, ...]:
    """``{"hand_vel": "continuous:2", "condition": "class:8"}`` -> TaskSpecs in the given order."""
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(f'tasks must be a non-empty mapping like {{"hand_vel": "continuous:2"}}, got {tasks!r}')
    specs = []
    for name, text in tasks.items():
        kind, _, dim = str(text).partition(":")
        if kind not in TASK_KINDS or not dim.isdigit():
            raise ValueError(f"task {name!r}: spec {text!r} must be 'continuous:<dim>' or 'class:<n_classes>'")
        if "." in name or not name:
            raise ValueError(f"task name {name!r} must be non-empty and contain no '.'")
        if int(dim) < (2 if kind == "class" else 1):
            raise ValueError(f"task {name!r}: a {kind} task needs dim >= {2 if kind == 'class' else 1}, got {dim}")
        specs.append(TaskSpec(name, kind, int(dim)))
    return tuple(specs)


@dataclass
class POYOPlusConfig(POYOConfig):
    """POYO+ architecture: :class:`POYOConfig` plus the tasks.

    Attributes:
        tasks: task name -> ``"continuous:<dim>"`` or ``"class:<n_classes>"``. A continuous task
            reads the recording's behaviour series of that name; a class task reads the
            trials-table column of that name (integer labels ``0 .. n_classes - 1``).
        behavior_key: the continuous task returned as ``outputs["behavior"]`` (and scored by
            ``spikefm eval`` as velocity R2).
        task_weights: task name -> weight of its loss (default 1 each), as torch_brain's per-readout
            ``weights``; balances a cross-entropy (~2 nats at start) against an MSE on raw units.
    """

    tasks: dict[str, str] = field(default_factory=lambda: {"hand_vel": "continuous:2", "condition": "class:8"})
    task_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tasks = dict(self.tasks)
        specs = {s.name: s for s in parse_tasks(self.tasks)}
        if self.behavior_key not in specs or specs[self.behavior_key].kind != "continuous":
            raise ValueError(
                f"POYOPlusConfig.behavior_key {self.behavior_key!r} must name a continuous task of {self.tasks}"
            )
        self.task_weights = {k: float(v) for k, v in dict(self.task_weights).items()}
        unknown = set(self.task_weights) - set(specs)
        if unknown or any(w < 0 for w in self.task_weights.values()):
            raise ValueError(f"POYOPlusConfig.task_weights {self.task_weights} must be >= 0 for tasks of {self.tasks}")

    @property
    def task_specs(self) -> tuple[TaskSpec, ...]:
        return parse_tasks(self.tasks)


PRESETS: dict[str, dict[str, Any]] = {
    # torch_brain examples/poyo_plus/configs/model/calcium_poyo_plus.yaml (the paper's model):
    # dim 128, depth 24, cross_heads 4, self_heads 8, dim_head 64, 32 latents every 0.125 s,
    # ffn_dropout 0.2, lin_dropout 0.4 (its atn_dropout 0.2 is not modelled: spikefm's POYO has none).
    "poyo_plus": {"dim": 128, "depth": 24, "cross_heads": 4, "self_heads": 8, "head_dim": 64,
                  "latents_per_step": 32, "latent_step": 0.125, "dropout": 0.2, "lin_dropout": 0.4},
    # CPU-sized for tests and the tiny recipe.
    "tiny": {"dim": 64, "depth": 2, "cross_heads": 2, "self_heads": 2, "head_dim": 32, "latents_per_step": 8,
             "dropout": 0.1, "lin_dropout": 0.1, "min_units": 20},
}


# ---------------------------------------------------------------------------- tokenizer
@dataclass(frozen=True)
class MultiTaskConfig:
    """Config of :class:`MultiTaskTokenizer`.

    Args:
        tasks: task name -> spec, as :attr:`POYOPlusConfig.tasks`.
        query_rate_hz: query rate of continuous tasks (queries at ``k / rate`` in the window).
        class_time_key: where a class task's one query per trial sits: a trials column of
            times (default ``move_onset_time``), or ``"start"`` / ``"end"`` of the trial.
        task_sessions: task -> sessions whose labels of that task are used (the others get no
            queries of it); a task not listed uses every session that has its labels.
        start_end_tokens: POYO's START / END token per unit.
    """

    tasks: dict[str, str]
    query_rate_hz: float = 100.0
    class_time_key: str = "move_onset_time"
    task_sessions: dict[str, tuple[str, ...]] | None = None
    start_end_tokens: bool = True

    def __post_init__(self) -> None:
        specs = parse_tasks(dict(self.tasks))
        object.__setattr__(self, "tasks", dict(self.tasks))
        if not (np.isfinite(self.query_rate_hz) and self.query_rate_hz > 0):
            raise ValueError(f"MultiTaskConfig.query_rate_hz must be > 0, got {self.query_rate_hz}")
        if self.task_sessions is not None:
            unknown = set(self.task_sessions) - {s.name for s in specs}
            if unknown:
                raise ValueError(f"task_sessions names unknown task(s) {sorted(unknown)}; tasks are {list(self.tasks)}")
            object.__setattr__(self, "task_sessions", {k: tuple(v) for k, v in self.task_sessions.items()})


class MultiTaskTokenizer:
    """Per-spike tokens (:class:`SpikeTokenizer`) plus every task's queries in one list.

    Query order: task by task in ``config.tasks`` order, by time within a task. Targets:
    ``targets[TASK_KEY]`` float [Q, 1] the task index of each query; ``targets[name]``
    float [Q, dim] (class tasks: [Q, 1] label) set on that task's queries and NaN elsewhere.
    A continuous task's targets are the behaviour interpolated at ``k / query_rate_hz``; a
    class task has one query per trial whose ``class_time_key`` time lies in the window.

    What it loses: nothing of the spikes; class labels exist only at one time per trial.
    """

    def __init__(self, config: MultiTaskConfig) -> None:
        self.config = config
        self.specs = parse_tasks(config.tasks)
        self.spikes = SpikeTokenizer(SpikeConfig(query="none", start_end_tokens=config.start_end_tokens))

    def __call__(self, window: Window) -> Tokens:
        tokens = self.spikes(window)
        parts = [self._task_queries(window, spec) for spec in self.specs]
        times = np.concatenate([p[0] for p in parts])  # [Q]
        task = np.concatenate([np.full(p[0].shape[0], i, np.float32) for i, p in enumerate(parts)])
        targets = {TASK_KEY: task[:, None]}
        offset = 0
        for spec, (queries, values) in zip(self.specs, parts):
            column = np.full((times.shape[0], 1 if spec.kind == "class" else spec.dim), np.nan, np.float32)
            column[offset : offset + queries.shape[0]] = values
            targets[spec.name] = column
            offset += queries.shape[0]
        return replace(tokens, query_timestamps=times, targets=targets)

    def has_labels(self, recording: Recording, spec: TaskSpec) -> bool:
        """Whether ``recording``'s labels of task ``spec`` are used."""
        allowed = (self.config.task_sessions or {}).get(spec.name)
        if allowed is not None and recording.session not in allowed:
            return False
        if spec.kind == "continuous":
            return spec.name in recording.behavior
        return recording.trials is not None and spec.name in recording.trials.columns

    def _task_queries(self, window: Window, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
        recording = window.recording
        if not self.has_labels(recording, spec):
            return np.zeros(0), np.zeros((0, 1 if spec.kind == "class" else spec.dim), np.float32)
        if spec.kind == "continuous":
            queries, targets = make_queries(
                window, QueryConfig(query="rate", query_rate_hz=self.config.query_rate_hz, behavior_keys=(spec.name,))
            )
            if targets[spec.name].shape[1] != spec.dim:
                raise DataError(
                    f"{recording.session}: behaviour {spec.name!r} has {targets[spec.name].shape[1]} columns but the "
                    f"task spec says continuous:{spec.dim}"
                )
            return queries, targets[spec.name]
        return self._class_queries(recording, spec)

    def _class_queries(self, recording: Recording, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
        trials, key = recording.trials, self.config.class_time_key
        if key in ("start", "end"):
            times = trials.start if key == "start" else trials.end
        elif key in trials.columns:
            times = np.asarray(trials.columns[key], np.float64)
        else:
            raise DataError(
                f"{recording.session}: class task {spec.name!r} places its query at trials column {key!r}, which is "
                f"missing (columns {sorted(trials.columns)}); set the tokenizer's class_time_key to a column, "
                "'start' or 'end'"
            )
        labels = np.asarray(trials.columns[spec.name])
        inside = (times >= recording.start) & (times < recording.end)
        labels = labels[inside]
        if labels.size and not (
            np.issubdtype(labels.dtype, np.number) and np.all(labels == np.round(labels))
            and labels.min() >= 0 and labels.max() < spec.dim
        ):
            raise DataError(
                f"{recording.session}: class task {spec.name!r} needs integer labels in [0, {spec.dim}), got "
                f"{np.unique(labels)[:10]}"
            )
        return times[inside], labels.astype(np.float32)[:, None]


# ---------------------------------------------------------------------------- model
class POYOPlus(POYO):
    """POYO+ multi-task decoder (POYO's encoder, task queries, a head per task).

    Args:
        config: architecture and tasks.
        unit_keys: initial unit vocabulary (``"session/unit"``).
        sessions: initial session vocabulary.

    Shapes:
        forward(padded batch of :class:`MultiTaskTokenizer` tokens) -> dict with, per task in
        ``config.tasks`` order, ``"values/<task>"`` [B, Q, dim] (continuous) or
        ``"logits/<task>"`` [B, Q, n_classes] (class) at every query; ``"behavior"`` =
        ``values/<behavior_key>``; ``"query_task"`` long [B, Q] each query's task index;
        ``"task_weight"`` [T] each task's loss weight.
    """

    def __init__(self, config: POYOPlusConfig, *, unit_keys: Sequence[str], sessions: Sequence[str]) -> None:
        # POYO builds the unit / session / token-type / latent tables and the PerceiverIO; its
        # single read-out is replaced by one head per task below.
        super().__init__(config, unit_keys=unit_keys, sessions=sessions, behavior_dim=1)
        self.specs = config.task_specs
        self.behavior_target = config.behavior_key  # the batch target `outputs["behavior"]` decodes
        self.task_embedding = KeyedEmbedding(dim=config.dim, keys=[s.name for s in self.specs])
        self.readout = nn.ModuleDict({s.name: nn.Linear(config.dim, s.dim) for s in self.specs})
        weights = [config.task_weights.get(s.name, 1.0) for s in self.specs]
        self.register_buffer("task_weight", torch.tensor(weights), persistent=False)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        if batch.packed:
            raise ValueError("POYO+ reads padded batches; collate with pack=False")
        if batch.query_timestamps is None or TASK_KEY not in batch.targets:
            raise ValueError(f"POYO+ needs task queries: tokenize with MultiTaskTokenizer (targets['{TASK_KEY}'])")
        table, index = self._token_rows(batch)  # [R, D], [B, L]: token i is table[index[i]]
        mask = batch.mask
        if self.training and self.config.unit_dropout:
            mask = mask & unit_dropout_keep(batch, self.config.min_units)
        latents, latent_times = latent_grid(
            self.latent_embedding, batch.duration, step=self.config.latent_step
        )  # [B, M, D], [B, M]
        task = batch.targets[TASK_KEY][..., 0].long().clamp(0, len(self.specs) - 1)  # [B, Q]
        task_rows = self.task_embedding.lookup([s.name for s in self.specs])[task]  # [B, Q]
        session = self.session_embedding(self.session_embedding.lookup(batch.sessions))  # [B, D]
        queries = session[:, None, :] + self.task_embedding(task_rows)  # [B, Q, D]
        out = self.perceiver(
            table, batch.timestamps, latents, latent_times, queries, batch.query_timestamps,
            input_mask=mask, input_index=index,
        )  # [B, Q, D]
        out = self.readout_dropout(out)
        outputs = {f"{_HEAD_PREFIX[s.kind]}/{s.name}": self.readout[s.name](out) for s in self.specs}
        outputs["behavior"] = outputs[f"values/{self.config.behavior_key}"]  # [B, Q, dim]
        outputs["query_task"] = task
        outputs["task_weight"] = self.task_weight  # [T] the objective's weight of each task
        return outputs


def poyo_plus_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over tasks of (weight x task loss x windows carrying the task) / windows (torch_brain POYO+).

    A continuous task's loss is the MSE over its queries (finite targets only); a class task's
    is the cross-entropy over its queries. Metrics: per-task loss and class accuracy.
    """
    heads = [k for k in outputs if k.startswith(("values/", "logits/"))]  # in task-index order
    task, valid = outputs["query_task"], batch.query_mask  # [B, Q]
    loss = outputs["behavior"].sum() * 0.0  # keeps the graph when no task has a query
    metrics: dict[str, Tensor] = {}
    for index, key in enumerate(heads):
        kind, name = key.split("/", 1)
        selected = valid & (task == index)  # [B, Q]
        if not bool(selected.any()):
            continue
        target = batch.targets[name]  # [B, Q, dim] or [B, Q, 1]
        if kind == "values":
            task_loss = behavior_mse(outputs[key], target, selected)
        else:
            logits, labels = outputs[key][selected], target[selected][:, 0].long()  # [N, C], [N]
            task_loss = F.cross_entropy(logits, labels)
            metrics[f"{name}/acc"] = (logits.argmax(-1) == labels).float().mean().detach()
        metrics[f"{name}/loss"] = task_loss.detach()
        loss = loss + outputs["task_weight"][index] * task_loss * selected.any(1).sum()
    return loss / batch.batch_size, metrics


def _sizes(recordings: Sequence[Recording], config: POYOPlusConfig) -> dict[str, Any]:
    for spec in config.task_specs:
        if spec.kind == "continuous":
            dims = {r.behavior[spec.name].dim for r in recordings if spec.name in r.behavior}
            if dims - {spec.dim}:
                raise ValueError(f"task {spec.name!r} is continuous:{spec.dim} but the recordings have widths {dims}")
            found = bool(dims)
        else:
            found = any(r.trials is not None and spec.name in r.trials.columns for r in recordings)
        if not found:
            raise ValueError(
                f"no recording has labels for task {spec.name!r} ({spec.kind}: a behaviour series for continuous "
                "tasks, a trials column for class tasks); drop it from model.overrides.tasks"
            )
    keys = [k for r in recordings for k in r.unit_keys()]
    return {"unit_keys": keys, "sessions": [r.session for r in recordings]}


def _tokenizer(config: POYOPlusConfig, **overrides: Any) -> MultiTaskTokenizer:
    return MultiTaskTokenizer(
        MultiTaskConfig(**{"tasks": config.tasks, "query_rate_hz": config.query_rate_hz, **overrides})
    )


SPEC = register(
    ModelSpec(
        name="poyo_plus", config_cls=POYOPlusConfig, model_cls=POYOPlus, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=poyo_plus_objective, sizes_from_data=_sizes, task="decoding", pack=False,
        causal=False,  # POYO's encoder: every spike of the window, future included
    )
)
