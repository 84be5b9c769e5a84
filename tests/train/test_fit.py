import torch

from spikefm.eval.evaluate import predict, score
from spikefm.models.registry import build_config, get_spec
from spikefm.train.config import RunConfig
from spikefm.train.fit import fit, load_checkpoint


def _recipe(tmp_path, name, sessions):
    return RunConfig.from_dict({
        "name": name,
        "model": {"name": name},
        "data": {"synthetic": {"n_sessions": 2, "units_per_session": [14, 18], "n_trials": 30}, "sessions": sessions},
        "trainer": {"max_steps": 6, "batch_size": 8, "val_every": 3, "warmup_steps": 2, "out_dir": str(tmp_path),
                    "progress": False},
    })


def test_fit_writes_logs_and_a_checkpoint_that_rebuilds_the_model(tmp_path):
    result = fit(_recipe(tmp_path, "ndt1", ["synth-0"]))
    assert (result.run_dir / "logs" / "metrics.csv").exists() and result.checkpoint.exists()
    module, config = load_checkpoint(result.checkpoint)
    assert config.model.name == "ndt1"
    spec = get_spec("ndt1")
    tokenizer = spec.make_tokenizer(build_config("ndt1", "tiny"))
    rec = result.recordings[0]
    torch.manual_seed(0)
    ours = predict(result.module.model, tokenizer, rec, split="test")
    rebuilt = predict(module.model, tokenizer, rec, split="test")
    torch.testing.assert_close(torch.from_numpy(ours.rates), torch.from_numpy(rebuilt.rates))
    assert set(score(ours)) == {"co-bps"}


def test_fit_decoder_across_sessions_and_score(tmp_path):
    result = fit(_recipe(tmp_path, "poyo", []))
    assert len(result.recordings) == 2
    spec = get_spec("poyo")
    tokenizer = spec.make_tokenizer(build_config("poyo", "tiny"))
    predictions = predict(result.module.model, tokenizer, result.recordings[1], split="test")
    assert predictions.behavior.shape[-1] == 2 and set(score(predictions)) == {"vel R2"}
