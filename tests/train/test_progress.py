"""Progress in steps with loss and ETA; plain lines every N seconds when not on a terminal."""

import io
from types import SimpleNamespace

import torch

from spikefm.train.progress import StepProgress, format_duration


def _trainer(step, max_steps=200, val=None):
    metrics = {} if val is None else {"val/loss": torch.tensor(val)}
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_global_zero=True, callback_metrics=metrics,
                           sanity_checking=False)


def _run(progress, steps, max_steps=200):
    progress.on_train_start(_trainer(0, max_steps), None)
    for step in range(1, steps + 1):
        progress.on_train_batch_end(_trainer(step, max_steps), None, {"loss": torch.tensor(1.0 / step)}, None, 0)
        if step == 4:
            progress.on_validation_end(_trainer(step, max_steps, val=0.25), None)
    progress.on_train_end(_trainer(steps, max_steps), None)


def test_without_a_terminal_it_prints_steps_loss_and_eta_lines():
    stream = io.StringIO()
    _run(StepProgress(stream=stream, interval=0.0, interactive=False, window=2), steps=6)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("training 200 steps")
    assert lines[1].startswith("step 1/200 (0%)  loss 1.0000") and "step/s" in lines[1] and "ETA" in lines[1]
    assert "validation at step 4: val/loss 0.2500" in lines
    assert lines[-2].startswith("step 6/200 (3%)  loss 0.1833  val/loss 0.2500")  # mean of the last 2 steps
    assert lines[-1].startswith("done: step 6/200")
    assert "Epoch" not in stream.getvalue()


def test_lines_are_spaced_by_the_interval():
    stream = io.StringIO()
    _run(StepProgress(stream=stream, interval=3600.0, interactive=False), steps=50)
    assert [line.split()[0] for line in stream.getvalue().splitlines()] == ["training", "validation", "done:"]


def test_on_a_terminal_it_draws_one_bar_in_steps():
    stream = io.StringIO()
    _run(StepProgress(stream=stream, interactive=True), steps=3, max_steps=10)
    text = stream.getvalue()
    assert "training: 3/10" in text and "loss" in text and "done: step 3/10" in text


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.4, 61, 3725)] == ["0s", "59s", "1m01s", "1h02m05s"]
