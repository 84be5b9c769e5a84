import pytest

from spikefm.train.config import ConfigError, RunConfig, apply_overrides, load_recipe
from spikefm.train.module import warmup_cosine


def test_unknown_key_is_an_error():
    with pytest.raises(KeyError, match="unknown config key"):
        RunConfig.from_dict({"trainer": {"max_stepz": 3}})
    with pytest.raises(KeyError, match="unknown config key"):
        RunConfig.from_dict({"modle": {}})


def test_overrides_parse_yaml_values_and_reject_unknown_keys():
    cfg = apply_overrides(RunConfig(), ["trainer.lr=0.01", "data.sessions=[a, b]", "model.overrides.dim=32"])
    assert cfg.trainer.lr == 0.01 and cfg.data.sessions == ["a", "b"] and cfg.model.overrides == {"dim": 32}
    with pytest.raises(KeyError, match="unknown key"):
        apply_overrides(RunConfig(), ["trainer.nope=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides(RunConfig(), ["trainer.lr"])


def test_invalid_values_fail_on_construction():
    with pytest.raises(ValueError, match="window"):
        RunConfig.from_dict({"data": {"window": 0}})


def test_load_recipe_reads_yaml_and_names_the_run(tmp_path):
    path = tmp_path / "my_recipe.yaml"
    path.write_text("model:\n  name: poyo\ntrainer:\n  max_steps: 7\n")
    cfg = load_recipe(path, ["trainer.batch_size=4"])
    assert (cfg.name, cfg.model.name, cfg.trainer.max_steps, cfg.trainer.batch_size) == ("my_recipe", "poyo", 7, 4)


def test_warmup_then_cosine_decay():
    lr = [warmup_cosine(s, warmup_steps=10, max_steps=110, min_lr_ratio=0.1) for s in range(111)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
    assert lr[110] == pytest.approx(0.1) and all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_weight_averaging_and_best_checkpoint_settings_are_checked():
    with pytest.raises(ValueError, match="ema_decay"):
        RunConfig.from_dict({"trainer": {"ema_decay": 1.0}})
    with pytest.raises(ValueError, match="keep_best"):
        RunConfig.from_dict({"trainer": {"keep_best": "loss"}})
    assert RunConfig.from_dict({"trainer": {"ema_decay": 0.999, "keep_best": "val/loss"}}).trainer.keep_best


def test_values_are_coerced_to_the_field_types():
    # PyYAML reads `1e-3` (no dot) as a string; single strings for list fields are one-item lists.
    cfg = apply_overrides(RunConfig(), [
        "trainer.lr=1e-3", "data.sessions=synth-0", "data.paths=/x.h5", "trainer.progress=false",
        "trainer.max_steps=20", "data.window=2",
    ])
    assert apply_overrides(RunConfig(), ["data.sessions=[7, b]"]).data.sessions == ["7", "b"]  # ids are strings
    assert cfg.trainer.lr == 1e-3 and isinstance(cfg.trainer.lr, float)
    assert cfg.data.sessions == ["synth-0"] and cfg.data.paths == ["/x.h5"]
    assert cfg.trainer.progress is False and cfg.trainer.max_steps == 20 and cfg.data.window == 2.0


def test_yaml_recipe_with_exponent_learning_rate(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("trainer:\n  lr: 1e-3\n  weight_decay: 5e-2\ndata:\n  paths: /data/a.h5\nmodel:\n  overrides:\n")
    cfg = load_recipe(path)
    assert (cfg.trainer.lr, cfg.trainer.weight_decay, cfg.data.paths) == (1e-3, 5e-2, ["/data/a.h5"])
    assert cfg.model.overrides == {}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.lr=abc", "trainer.lr: Input should be a valid number"),
        ("trainer.max_steps=1.5", "trainer.max_steps: Input should be a valid integer"),
        ("trainer.progress=maybe", "trainer.progress: Input should be a valid boolean"),
        ("data.paths=3", "data.paths: Input should be a valid list"),
        ("model.overrides=[1]", "model.overrides: Input should be a valid dictionary"),
        ("trainer.lr=-1", "trainer.lr must be > 0"),
        ("data.paths=[", "not valid YAML"),
    ],
)
def test_wrong_types_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(RunConfig(), [override])


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: ndt1\n trainer: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: YAML syntax error at line 3"):
        load_recipe(path)


def test_round_trip_through_dict_keeps_types():
    cfg = apply_overrides(RunConfig(), ["trainer.lr=2e-4", "data.sessions=a"])
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
