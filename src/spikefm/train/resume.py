"""Checkpoints to resume from: every N steps and on SIGTERM / SIGINT, and exact resumption.

:class:`ResumeCheckpoint` writes ``checkpoints/last.ckpt`` (atomically: a kill mid-write leaves
the previous one) every ``every`` optimizer steps and when the process receives SIGTERM or
SIGINT (Ctrl-C); after a signal it saves and stops at the end of the current step, so nothing
is half-updated. A second Ctrl-C aborts at once.

Resuming from ``last.ckpt`` continues exactly where the run stopped, so a killed and resumed
run ends with the same weights and loss curve as an uninterrupted one (same seed and
threads): the checkpoint holds, besides model, optimizer, schedule, loop counters and the
callbacks' states (EMA, early stopping, best model), the global random states of torch, numpy
and Python (masking draws from them), restored just before training continues; the samplers
are pure functions of (seed, epoch), and the data module skips the batches the epoch already
used (:meth:`spikefm.data.sampling._ShardedSampler.resume_at`).

When a validation is due at the step a checkpoint falls on, the checkpoint is written after
that validation, since Lightning does not repeat a validation when it resumes.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from spikefm.train.checkpoints import CheckpointError

__all__ = ["ResumeCheckpoint", "TrainingInterrupted", "ResumableCSVLogger", "resolve_resume", "truncate_metrics",
           "rng_state", "set_rng_state"]

LAST = "last.ckpt"


class TrainingInterrupted(Exception):
    """Raised to end ``trainer.fit`` after a signal; the checkpoint to resume from is already written."""

    def __init__(self, signum: int, checkpoint: Path, step: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}")
        self.signum, self.checkpoint, self.step = signum, checkpoint, step


def rng_state() -> dict[str, Any]:
    """The global random states of torch (and CUDA), numpy and Python, as tensors and plain data."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(np.asarray(keys, np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": [version, list(internal), python_gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, python_gauss = state["python"]
    random.setstate((version, tuple(internal), python_gauss))


class ResumeCheckpoint(Checkpoint):
    """Write ``dirpath/last.ckpt`` every ``every`` steps and on SIGTERM / SIGINT; restore random states on resume.

    Args:
        dirpath: the run's ``checkpoints`` folder.
        every: optimizer steps between checkpoints (0: only on a signal).
    """

    def __init__(self, dirpath: str | Path, every: int) -> None:
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self._signal: int | None = None
        self._pending = False  # a checkpoint is due, waiting for this step's validation to end
        self._stop_after_step = False
        self._rng_to_restore: dict[str, Any] | None = None
        self._previous_handlers: dict[int, Any] = {}

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum
        if signum == signal.SIGINT:  # a second Ctrl-C aborts without waiting for the step to end
            signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f"\n{signal.Signals(signum).name} received: saving a checkpoint at the end of this step, then "
              "stopping" + (" (Ctrl-C again aborts now)" if signum == signal.SIGINT else ""), flush=True)

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Replaces Lightning's SIGTERM handler (installed just before on_train_start), which only
            # notes the signal and exits without saving; Lightning puts the original back at teardown.
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def _signalled(self, trainer: L.Trainer) -> bool:
        # Every rank must stop at the same step, whichever rank the signal reached.
        return bool(trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False))

    # ------------------------------------------------------------------ saving
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        signalled = self._signalled(trainer)
        if not (signalled or (self.every and step % self.every == 0)):
            return
        self._stop_after_step = signalled
        if _validation_due(trainer):
            self._pending = True  # saved in on_validation_end, after this step's validation
        else:
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending and not trainer.sanity_checking:
            self._pending = False
            self._save(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # The step that saw the signal has ended, been logged and validated: stop before the next one.
        if self._stop_after_step:
            raise TrainingInterrupted(self._signal or signal.SIGTERM, self.path, trainer.global_step)

    def _save(self, trainer: L.Trainer) -> None:
        temporary = self.path.with_suffix(".ckpt.tmp")
        trainer.save_checkpoint(temporary)
        if trainer.is_global_zero:
            os.replace(temporary, self.path)
        trainer.strategy.barrier("spikefm_resume_checkpoint")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied at on_train_start: building the model and the loaders draws random numbers after this.
        self._rng_to_restore = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_handlers()
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None


def _validation_due(trainer: L.Trainer) -> bool:
    """Whether Lightning validates after the step that just ended (``check_val_every_n_epoch=None``)."""
    every = trainer.val_check_batch
    if not trainer.enable_validation or every is None or every == float("inf"):
        return False
    return trainer.global_step % int(every) == 0


def resolve_resume(path: str | Path) -> tuple[Path, Path | None]:
    """``(checkpoint, run_dir)`` for ``--resume``: a run folder (its ``checkpoints/last.ckpt``) or a checkpoint file.

    ``run_dir`` is the folder the checkpoint belongs to (None when the file is not inside a run's
    ``checkpoints/`` folder).
    """
    path = Path(path)
    if path.is_dir():
        checkpoint = path / "checkpoints" / LAST
        if not checkpoint.is_file():
            raise CheckpointError(
                f"--resume {path}: no checkpoints/{LAST} in that folder; give a `spikefm train` run folder that "
                "has saved a checkpoint, or a .ckpt file"
            )
        return checkpoint, path
    if not path.is_file():
        raise CheckpointError(f"--resume {path}: no such run folder or checkpoint file")
    return path, path.parent.parent if path.parent.name == "checkpoints" else None


def truncate_metrics(path: Path, global_step: int) -> int:
    """Drop rows logged at ``step >= global_step`` from a CSV log (what a resumed run will log again).

    Returns the number of rows dropped.
    """
    if not path.is_file():
        return 0
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        fields, rows = reader.fieldnames or [], list(reader)
    keep = [row for row in rows if not row.get("step") or int(float(row["step"])) < global_step]
    if len(keep) < len(rows):
        temporary = path.with_suffix(".csv.tmp")
        with temporary.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields)
            writer.writeheader()
            writer.writerows(keep)
        os.replace(temporary, path)
    return len(rows) - len(keep)


class _AppendingWriter(ExperimentWriter):
    """Continues an existing ``metrics.csv`` (Lightning's writer deletes it when it starts)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that a resumed run appends to the stopped run's ``metrics.csv``.

    (Run folders are always fresh, so there is nothing else it could append to.)
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
