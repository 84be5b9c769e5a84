"""Training progress a person can read: step / max_steps, the recent loss, speed and time left.

On a terminal a one-line bar (tqdm) shows ``step 120/3000``, the mean loss of the last steps,
the last validation loss and an ETA. When output goes to a file or a pipe (no TTY), a plain
line is printed every ``interval`` seconds instead, plus one per validation, so a log never
stays silent for long:

    step 120/3000 (4%)  loss 0.3121  val/loss 0.3050  2.1 step/s  elapsed 57s  ETA 22m50s

>>> format_duration(3725.0)
'1h02m05s'
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, TextIO

import lightning as L
import torch
from lightning.pytorch.callbacks.progress import ProgressBar

__all__ = ["StepProgress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1h02m05s'``; ``57`` -> ``'57s'``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class StepProgress(ProgressBar):
    """Progress in optimizer steps (not epochs), with ETA and loss.

    Args:
        interval: seconds between lines when the output is not a terminal.
        stream: where to write (default ``sys.stdout``).
        interactive: draw a live bar (default: whether ``stream`` is a terminal).
        window: steps the shown loss is averaged over.
    """

    def __init__(
        self, *, interval: float = 30.0, stream: TextIO | None = None, interactive: bool | None = None,
        window: int = 50,
    ) -> None:
        super().__init__()
        self.interval = float(interval)
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._losses: deque[float] = deque(maxlen=window)
        self._enabled = True
        self._bar: Any = None
        self._val_loss: float | None = None
        self._start_step = 0
        self._start = self._last_line = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def status(self, step: int, max_steps: int) -> str:
        """The progress line for ``step`` (without the bar)."""
        parts = [f"step {step}/{max_steps} ({step / max(1, max_steps):.0%})"]
        if self._losses:
            parts.append(f"loss {sum(self._losses) / len(self._losses):.4f}")
        if self._val_loss is not None:
            parts.append(f"val/loss {self._val_loss:.4f}")
        elapsed = time.monotonic() - self._start
        done = step - self._start_step
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts += [f"{rate:.2f} step/s" if rate < 10 else f"{rate:.0f} step/s", f"elapsed {format_duration(elapsed)}"]
            if step < max_steps:
                parts.append(f"ETA {format_duration((max_steps - step) / rate)}")
        return "  ".join(parts)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._start_step = trainer.global_step
        self._start = self._last_line = time.monotonic()
        if self.interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=trainer.max_steps, initial=trainer.global_step, unit="step", file=self.stream,
                             dynamic_ncols=True, desc="training", bar_format="{desc}: {n}/{total} {bar} {postfix}")
        else:
            resumed = f", resuming at step {trainer.global_step}" if trainer.global_step else ""
            self._write(f"training {trainer.max_steps} steps{resumed}; a progress line every {self.interval:g} s")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(float(loss.detach()))
        step, max_steps = trainer.global_step, trainer.max_steps
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix_str(self.status(step, max_steps).split("  ", 1)[-1], refresh=False)
        elif time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            self._write(self.status(step, max_steps))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        if trainer.sanity_checking or value is None or not trainer.is_global_zero:
            return
        self._val_loss = float(value)
        if self._enabled and self._bar is None:
            self._write(f"validation at step {trainer.global_step}: val/loss {self._val_loss:.4f}")

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._close()
        self._write(f"done: {self.status(trainer.global_step, trainer.max_steps)}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()
