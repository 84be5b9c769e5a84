"""pretrain -> save_pretrained -> finetune in a fresh process reproduces the in-process numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikefm.data.store import write_recording
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.models.pretrained import Pretrained, from_pretrained
from spikefm.train.config import RunConfig
from spikefm.train.finetune import MODES, finetune, pretrain

SETTINGS = {"adapt_steps": 4, "batch_size": 4, "threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def corpus_and_target(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    dataset = generate(SyntheticConfig(n_sessions=3, units_per_session=(14, 18), n_trials=30, seed=5))
    (root / "corpus").mkdir()
    for rec in dataset.recordings[:2]:
        write_recording(rec, root / "corpus" / f"{rec.session}.h5")
    target = write_recording(dataset.recordings[2], root / "target.h5")
    return root / "corpus", target


def _pretrain(tmp_path, corpus, name):
    config = RunConfig.from_dict({
        "name": name, "model": {"name": name},
        "trainer": {"max_steps": 4, "batch_size": 8, "val_every": 2, "warmup_steps": 1, "out_dir": str(tmp_path),
                    "progress": False},
    })
    return pretrain(config, corpus=corpus)


def _live(result, name):
    model = result.fit.module.model
    return Pretrained(model, name, model.config, dict(result.fit.module.hparams["data_sizes"]))


def test_finetune_in_a_fresh_process_reproduces_the_in_process_score(tmp_path, corpus_and_target):
    corpus, target = corpus_and_target
    result = _pretrain(tmp_path, corpus, "poyo")
    assert (result.pretrained_dir / "model.safetensors").exists()
    in_process = finetune(_live(result, "poyo"), target, mode="recalibrate", trials=4, settings=SETTINGS, log=print)
    out = tmp_path / "row.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    command = [sys.executable, "-m", "spikefm.cli", "finetune", str(result.pretrained_dir), "--data", str(target),
               "--mode", "recalibrate", "--trials", "4", "--json", str(out), "--out", str(tmp_path / "adapted")]
    command += [arg for k, v in SETTINGS.items() for arg in ("--set", f"{k}={v}")]
    subprocess.run(command, check=True, env=env, timeout=300)
    fresh = json.loads(out.read_text())
    assert fresh["metric"] == in_process.row.metric == "decode R2"
    assert fresh["score"] == pytest.approx(in_process.row.score, abs=1e-5)
    # The adapted model ships too, with the new session's rows in its vocabulary.
    adapted = from_pretrained(tmp_path / "adapted")
    assert any(k.startswith("synth-2/") for k in adapted.model.unit_embedding.keys)


@pytest.mark.parametrize("name, mode", [("spint", "zero-shot"), ("poyo", "head"), ("ndt2_decoder", "full"),
                                        ("mtm", "recalibrate"), ("neds", "recalibrate")])
def test_saved_and_live_models_adapt_identically(tmp_path, corpus_and_target, name, mode):
    corpus, target = corpus_and_target
    result = _pretrain(tmp_path, corpus, name)
    live = finetune(_live(result, name), target, mode=mode, trials=4, settings=SETTINGS, log=print)
    saved = finetune(result.pretrained_dir, target, mode=mode, trials=4, settings=SETTINGS, log=print,
                     out=tmp_path / "adapted")
    assert saved.row.score == pytest.approx(live.row.score, abs=1e-5)
    assert from_pretrained(tmp_path / "adapted").card["sessions"][-1] == "synth-2"  # the adapted model ships
    assert live.row.steps == (0 if mode == "zero-shot" else SETTINGS["adapt_steps"])


def test_head_mode_moves_only_the_head_and_new_rows(tmp_path, corpus_and_target):
    corpus, target = corpus_and_target
    result = _pretrain(tmp_path, corpus, "poyo")
    before = {k: v.clone() for k, v in result.fit.module.model.state_dict().items() if torch.is_tensor(v)}
    adapted = finetune(result.pretrained_dir, target, mode="head", trials=4, settings=SETTINGS, log=print).model
    after = adapted.state_dict()
    assert not torch.equal(after["readout.weight"], before["readout.weight"])
    for key in before:
        if not key.startswith(("readout", "unit_embedding", "session_embedding")):
            torch.testing.assert_close(after[key], before[key], msg=f"{key} moved in head mode")
    old_rows = before["unit_embedding.weight"].shape[0]
    torch.testing.assert_close(after["unit_embedding.weight"][:old_rows], before["unit_embedding.weight"])


def test_unknown_mode_and_impossible_mode_are_clear_errors(tmp_path, corpus_and_target):
    corpus, target = corpus_and_target
    result = _pretrain(tmp_path, corpus, "poyo")
    with pytest.raises(ValueError, match="unknown fine-tuning mode"):
        finetune(result.pretrained_dir, target, mode="everything")
    with pytest.raises(ValueError, match="cannot be adapted by mode 'zero-shot'"):
        finetune(result.pretrained_dir, target, mode="zero-shot", trials=4, settings=SETTINGS)
    assert set(MODES) == {"zero-shot", "recalibrate", "head", "full"}
