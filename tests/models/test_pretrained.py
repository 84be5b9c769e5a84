"""save_pretrained / from_pretrained round trip for every model that can transfer."""

import json

import pytest
import torch

from spikefm.models.pretrained import from_pretrained, is_pretrained_dir, save_pretrained
from spikefm.models.registry import build_config, get_spec, list_models
from spikefm.tokenize.base import collate

# Every multi-session model (the ones a pretrained checkpoint can move to a new session), including
# any registered later: POYO, POYO+, POSSM, SPINT, NDT2 (+ decoder), NDT3, MtM, NEDS today.
TRANSFER_MODELS = [name for name in list_models() if get_spec(name).multi_session]


def test_the_published_transfer_models_are_covered():
    assert {"poyo", "poyo_plus", "possm", "spint", "ndt2", "ndt3", "mtm", "neds"} <= set(TRANSFER_MODELS)


@pytest.mark.parametrize("name", TRANSFER_MODELS)
def test_round_trip_gives_identical_outputs(name, small_dataset, tmp_path):
    torch.manual_seed(0)
    spec = get_spec(name)
    config = build_config(name, "tiny")
    recordings = small_dataset.recordings
    sizes = spec.sizes_from_data(recordings, config)
    model = spec.model_cls(config, **sizes).eval()
    if hasattr(model, "calibrate"):  # SPINT keeps calibration counts (tensors) in its extra state
        model.calibrate(recordings[0], [0, 1])
    tokenizer = spec.make_tokenizer(config)
    batch = collate([tokenizer(recordings[0].window(t, t + 1.0)) for t in (0.0, 1.2)], pack=spec.pack)
    save_pretrained(model, tmp_path / name, name=name, data_sizes=sizes, sessions=[r.session for r in recordings],
                    scores={"val loss": 1.25})
    assert is_pretrained_dir(tmp_path / name)
    loaded = from_pretrained(tmp_path / name)
    torch.manual_seed(1)
    expected = model(batch)
    torch.manual_seed(1)
    got = loaded.model(batch)
    for key, value in expected.items():
        if torch.is_tensor(value) and value.is_floating_point():
            torch.testing.assert_close(got[key], value, msg=f"{name}: output {key} differs after the round trip")
    assert loaded.config == model.config
    assert json.loads((tmp_path / name / "config.json").read_text())["model"] == name
    card = (tmp_path / name / "README.md").read_text()
    assert "val loss" in card and recordings[0].session in card


def test_loading_never_unpickles(tmp_path, small_dataset):
    spec = get_spec("poyo")
    config = build_config("poyo", "tiny")
    sizes = spec.sizes_from_data(small_dataset.recordings, config)
    save_pretrained(spec.model_cls(config, **sizes), tmp_path, name="poyo", data_sizes=sizes)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.ckpt")) and not list(tmp_path.glob("*.pkl"))
    header = (tmp_path / "model.safetensors").read_bytes()[:8]  # safetensors: 8-byte header length, then JSON
    assert int.from_bytes(header, "little") > 0


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a pretrained folder"):
        from_pretrained(tmp_path)
