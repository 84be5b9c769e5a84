"""Checkpoints never run code, and a checkpoint refuses recordings of other neurons."""

import dataclasses

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.data.recording import DataError
from spikefm.data.store import write_recording
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.models.registry import build_config, get_spec
from spikefm.train.checkpoints import CheckpointError, check_unit_ids, plain, safe_load
from spikefm.train.fit import fit, load_checkpoint


class _Payload:
    """Unpickling this creates ``marker`` (what an attacker's ``os.system`` would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"run_config": {}}, "x": _Payload(marker)}, path)
    return path, marker


def test_a_malicious_checkpoint_is_refused_and_its_code_never_runs(evil):
    path, marker = evil
    recordings = generate(SyntheticConfig(n_sessions=1, units_per_session=(8, 8), n_trials=4)).recordings
    ndt2 = get_spec("ndt2").model_cls(build_config("ndt2", "tiny"), **get_spec("ndt2").sizes_from_data(recordings, None))
    for load in (safe_load, load_checkpoint, ndt2.load_pretrained):  # eval, resume, NDT2 init_from
        with pytest.raises(CheckpointError, match="refusing to load"):
            load(path)
        assert not marker.exists()
    result = CliRunner().invoke(app, ["eval", str(path)])
    assert result.exit_code == 2 and "refusing to load" in result.output and not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: unpickling it does create the file
    assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_random_or_truncated_bytes_are_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        load_checkpoint(path)


def test_a_foreign_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a `spikefm train` checkpoint"):
        load_checkpoint(path)


def test_plain_makes_hyperparameters_loadable_without_pickled_objects(tmp_path):
    value = {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(2), "t": ("a", 1), "p": tmp_path}
    path = tmp_path / "h.pt"
    torch.save(plain(value), path)
    assert torch.load(path, weights_only=True) == {"n": 3, "x": 0.5, "a": [0, 1], "t": ("a", 1), "p": str(tmp_path)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, recipe):
    return fit(recipe(tmp_path_factory.mktemp("runs"), max_steps=2, val_every=2, warmup_steps=1))


def test_checkpoint_stores_the_training_units_and_loads_with_weights_only(trained):
    saved = torch.load(trained.checkpoint, weights_only=True)
    recording = trained.recordings[0]
    assert saved["hyper_parameters"]["unit_ids"] == {recording.session: list(recording.units.ids)}
    module, _ = load_checkpoint(trained.checkpoint)
    check_unit_ids(module.hparams["unit_ids"], [recording])  # its own recording passes


def _with_units(recording, ids):
    return dataclasses.replace(recording, units=dataclasses.replace(recording.units, ids=np.asarray(ids)))


def test_same_session_and_unit_count_but_other_neurons_is_refused(trained, tmp_path):
    recording = trained.recordings[0]
    ids = list(recording.units.ids)
    trained_ids = {recording.session: ids}
    other = _with_units(recording, [f"other-{i}" for i in range(len(ids))])
    with pytest.raises(DataError, match="does not hold the neurons this checkpoint was trained on"):
        check_unit_ids(trained_ids, [other])
    with pytest.raises(DataError, match="different order"):
        check_unit_ids(trained_ids, [_with_units(recording, ids[::-1])])
    renamed = dataclasses.replace(other, session="another-session")
    check_unit_ids(trained_ids, [renamed])  # a session the checkpoint never saw is left to the model
    path = write_recording(other, tmp_path / "other.h5")
    result = CliRunner().invoke(app, ["eval", str(trained.checkpoint), "--data", str(path)], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert "does not hold the neurons" in result.output and recording.session in result.output


def test_module_examples_run():
    import doctest

    import spikefm.train.checkpoints as checkpoints

    assert doctest.testmod(checkpoints).failed == 0
