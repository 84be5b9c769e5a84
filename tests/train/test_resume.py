"""Kill a short run, resume it, and get exactly what an uninterrupted run gets."""

import csv
import os
import signal

import lightning as L
import pytest
import torch

from spikefm.train.fit import checkpoint_config, fit
from spikefm.train.resume import truncate_metrics


class _Kill(L.Callback):
    """Sends this process ``signum`` at the end of step ``step``, as a scheduler or Ctrl-C would."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class _Losses(L.Callback):
    def __init__(self):
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, module, outputs, *args):
        self.losses[trainer.global_step] = float(outputs["loss"])


def _assert_same_state(ours, theirs, where=""):
    if isinstance(theirs, torch.Tensor):
        assert torch.equal(ours, theirs), where
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            _assert_same_state(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same_state(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, where


def _curve(run_dir):
    rows = list(csv.DictReader(open(run_dir / "logs" / "metrics.csv")))
    return sorted((int(r["step"]), k, r[k]) for r in rows for k in r if k != "step" and r[k])


def _killed_then_resumed(tmp_path, config, kill_at, signum=signal.SIGTERM):
    killed_losses, resumed_losses = _Losses(), _Losses()
    killed = fit(config, callbacks=[_Kill(kill_at, signum), killed_losses])
    assert killed.interrupted and killed.checkpoint == killed.run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(killed.checkpoint, weights_only=True)["global_step"] == kill_at
    assert max(killed_losses.losses) == kill_at  # stopped at the end of the step the signal arrived in
    resumed = fit(checkpoint_config(killed.run_dir), resume=killed.run_dir, callbacks=[resumed_losses])
    assert not resumed.interrupted and resumed.run_dir == killed.run_dir
    assert min(resumed_losses.losses) == kill_at + 1
    return resumed, {**killed_losses.losses, **resumed_losses.losses}


@pytest.mark.parametrize("kill_at, ema", [(7, 0.0), (10, 0.9)])  # 10: a validation step; 0.9: EMA on
def test_killed_and_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, recipe, kill_at, ema):
    # 20 steps over 3-batch epochs: the run crosses several epochs and stops mid-epoch.
    reference_losses = _Losses()
    reference = fit(recipe(tmp_path / "a", ema_decay=ema), callbacks=[reference_losses])
    resumed, losses = _killed_then_resumed(tmp_path, recipe(tmp_path / "b", ema_decay=ema), kill_at)
    assert losses == reference_losses.losses  # every step's loss, bit for bit
    assert _curve(resumed.run_dir) == _curve(reference.run_dir)  # the logged curve, incl. validation
    _assert_same_state(resumed.module.state_dict(), reference.module.state_dict())
    final = torch.load(resumed.checkpoint, weights_only=True)
    expected = torch.load(reference.checkpoint, weights_only=True)
    # The checkpoint's weights (the EMA average when on), raw weights, optimizer and schedule.
    for key in ("state_dict", "current_model_state", "averaging_state", "optimizer_states", "lr_schedulers"):
        assert (key in final) == (key in expected), key
        if key in expected:
            _assert_same_state(final[key], expected[key], key)


def test_periodic_checkpoint_and_ctrl_c_resume_exactly_on_a_random_window_decoder(tmp_path, recipe):
    def poyo(folder):
        config = recipe(tmp_path / folder, "poyo", checkpoint_every=4)
        config.data.sampler, config.data.windows_per_epoch = "random", 20  # 3 batches per epoch
        return config

    reference_losses = _Losses()
    reference = fit(poyo("a"), callbacks=[reference_losses])
    assert torch.load(reference.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20
    resumed, losses = _killed_then_resumed(tmp_path, poyo("b"), 7, signal.SIGINT)  # mid-epoch
    assert losses == reference_losses.losses
    _assert_same_state(resumed.module.state_dict(), reference.module.state_dict())


def test_resume_from_a_periodic_checkpoint_after_a_hard_kill_drops_the_rows_logged_after_it(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,train/loss,val/loss\n0,1.0,\n4,0.9,\n4,,0.8\n5,0.7,\n9,0.6,\n")
    assert truncate_metrics(metrics, 5) == 2
    assert metrics.read_text().splitlines() == ["step,train/loss,val/loss", "0,1.0,", "4,0.9,", "4,,0.8"]


def test_rerunning_a_recipe_writes_a_new_folder_and_keeps_the_old_one(tmp_path, recipe):
    config = recipe(tmp_path, max_steps=2, val_every=2)
    first = fit(config)
    before = {p: p.read_bytes() for p in first.run_dir.rglob("*") if p.is_file()}
    second = fit(config)
    third = fit(config)
    assert [first.run_dir.name, second.run_dir.name, third.run_dir.name] == ["ndt1", "ndt1-1", "ndt1-2"]
    assert {p: p.read_bytes() for p in first.run_dir.rglob("*") if p.is_file()} == before


def test_cli_train_resume_continues_the_stored_recipe_in_its_folder(tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from spikefm.cli import app

    runner = CliRunner()
    recipe = Path(__file__).resolve().parents[2] / "configs" / "ndt1_tiny.yaml"
    small = ["--set", "data.synthetic.n_trials=30", "--set", "data.synthetic.n_sessions=1", "--threads", "1",
             "--set", f"trainer.out_dir={tmp_path}", "--set", "trainer.val_every=2", "--set", "trainer.warmup_steps=1",
             "--set", "trainer.checkpoint_every=2", "--set", "trainer.progress=false"]
    result = runner.invoke(app, ["train", str(recipe), *small, "--set", "trainer.max_steps=2"], terminal_width=200)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "ndt1_tiny"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "trainer.max_steps=4"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"run written to {run_dir};" in result.output.replace("\n", "") and "synth-0" in result.output
    assert "co-bps" in result.output  # the score table follows
    final = torch.load(run_dir / "checkpoints" / "final.ckpt", weights_only=True)
    assert final["global_step"] == 4 and final["hyper_parameters"]["run_config"]["trainer"]["max_steps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ndt1_tiny"]  # no new folder
    for args, message in [(["train", str(recipe), "--resume", str(run_dir)], "drop RECIPE"),
                          (["train"], "give a RECIPE"), (["train", "--resume", str(tmp_path / "nope")], "no such run")]:
        result = runner.invoke(app, args, terminal_width=200)
        assert result.exit_code == 2 and message in result.output, result.output
