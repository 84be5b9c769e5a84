"""NDT3: causal decoding, hidden held-out units, phase / return tokens, context-only adaptation."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spikefm.data.recording import TimeSeries
from spikefm.eval.context_adaptation import adapt_context
from spikefm.eval.evaluate import predict, score
from spikefm.models.ndt3 import NDT3, NDT3Config, ndt3_objective
from spikefm.models.registry import build_config, get_spec
from spikefm.tokenize.base import collate


@pytest.fixture(autouse=True)
def _one_thread():
    # The CI machine is small and shared; one intra-op thread keeps these tests fast and stable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(dataset, **overrides):
    spec = get_spec("ndt3")
    config = build_config("ndt3", "tiny", **overrides)
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data(dataset.recordings, config))
    tokenizer = spec.make_tokenizer(config)
    windows = [rec.window(t0, t0 + 1.0) for rec in dataset.recordings for t0 in rec.trials.start[:3]]
    return model, tokenizer, collate([tokenizer(w) for w in windows])


def _with_counts(batch, values, behavior=None):
    """``batch`` with new patch counts (and their count classes), optionally new behaviour."""
    classes = values.clamp(max=21)
    targets = dict(batch.targets) if behavior is None else {"hand_vel": behavior}
    return replace(batch, values=values, extras={**batch.extras, "count_class": classes}, targets=targets)


def test_decoded_behaviour_is_causal(small_dataset):
    model, _, batch = _build(small_dataset)
    model.eval()
    t = 20
    with torch.no_grad():
        before = model(batch)["behavior"]
        values, behavior = batch.values.clone(), batch.targets["hand_vel"].clone()
        later = batch.extras["patch_time"] > t
        values[later] = torch.randint_like(values[later], 0, 6)
        behavior[:, t:] += 5.0  # behaviour at >= t, the value being decoded included
        after = model(_with_counts(batch, values, behavior))["behavior"]
        values = batch.values.clone()
        values[batch.extras["patch_time"] == t] += 3
        changed = model(_with_counts(batch, values))["behavior"]
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1])
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])  # the perturbation reaches later steps
    assert not torch.allclose(changed[:, t], before[:, t])  # spikes at t do inform the decode at t


def test_heldout_units_are_never_seen(small_dataset):
    model, _, batch = _build(small_dataset)
    model.eval()
    units = [np.flatnonzero(rec.units.heldout) for rec in small_dataset.recordings for _ in range(3)]
    perturbed = batch.values.clone()
    for b, held in enumerate(units):  # units are grouped in order: unit u -> patch u // P, channel u % P
        size = model.config.neurons_per_patch
        for u in held:
            rows = batch.mask[b] & (batch.extras["patch_group"][b] == u // size)
            perturbed[b, rows, u % size] += 7
    with torch.no_grad():
        out, out_perturbed = model(batch), model(_with_counts(batch, perturbed))
    torch.testing.assert_close(out_perturbed["behavior"], out["behavior"])
    torch.testing.assert_close(out_perturbed["log_rates"], out["log_rates"])
    assert not torch.equal(out_perturbed["counts"], out["counts"])  # ...yet they are scored


def test_log_rates_follow_unit_order_and_score(small_dataset):
    model, tokenizer, batch = _build(small_dataset)
    out = model(batch)
    n_units = max(r.n_units for r in small_dataset.recordings)
    assert out["log_rates"].shape == (batch.batch_size, 50, n_units) == out["counts"].shape
    rec = small_dataset.recordings[0]
    first = torch.from_numpy(rec.window(rec.trials.start[0], rec.trials.start[0] + 1.0).recording.bin(0.02))
    torch.testing.assert_close(out["counts"][0, :, : rec.n_units], first.float())
    scores = score(predict(model, tokenizer, rec, split="test"))
    assert set(scores) == {"co-bps", "decode R2"} and all(np.isfinite(v) for v in scores.values())


def test_phase_and_return_tokens(small_dataset):
    rec = small_dataset.recordings[0]
    ret = TimeSeries(rec.behavior["hand_vel"].timestamps, np.full(rec.behavior["hand_vel"].timestamps.size, 3.0))
    rec = replace(rec, behavior={**rec.behavior, "return": ret})
    config = build_config("ndt3", "tiny", n_phases=3, n_returns=8)
    spec = get_spec("ndt3")
    model = spec.model_cls(config, **spec.sizes_from_data([rec], config))
    tokenizer = spec.make_tokenizer(config)
    t0 = rec.trials.start[1]
    tokens = tokenizer(rec.window(t0 - 0.1, t0 + 0.9))
    onset = rec.trials.columns["move_onset_time"][1] - (t0 - 0.1)
    centre, phase = tokens.timestamps, tokens.extras["phase"]
    assert np.all(phase[centre < 0.1] == 0) and np.all(phase[(centre > 0.1) & (centre < onset)] == 1)
    assert np.all(phase[centre > onset] == 2) and np.all(tokens.extras["return_class"] == 4)
    batch = collate([tokens])
    loss, metrics = ndt3_objective(model(batch), batch)
    assert torch.isfinite(loss) and "return_ce" in metrics
    loss.backward()
    assert model.phase_embed.weight.grad is not None and model.return_embed.weight.grad is not None


def test_context_adaptation_learns_only_the_new_session_row(small_dataset):
    old, new = small_dataset.recordings
    spec = get_spec("ndt3")
    config = build_config("ndt3", "tiny")
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data([old], config))
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    result = adapt_context(model, new, spec.make_tokenizer(config), spec.objective, steps=3, lr=1e-2, batch_size=4)
    assert result.n_trainable == config.dim  # one session row; the subject is shared
    after = model.state_dict()
    session = "context.tables.session.weight"
    changed = [k for k, v in before.items() if k != session and not torch.equal(after[k], v)]
    assert changed == []
    torch.testing.assert_close(after[session][0], before[session][0])  # the old session's row is untouched
    assert model.subjects[new.session] == new.subject
    reloaded = NDT3(config, **spec.sizes_from_data([old], config))
    reloaded.load_state_dict(model.state_dict())
    assert new.session in reloaded.subjects  # the subject map travels in the state dict


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of neurons_per_patch"):
        NDT3Config(dim=100, neurons_per_patch=32)
    with pytest.raises(ValueError, match="behavior_maskout"):
        NDT3Config(behavior_maskout=(0.9, 0.1))


def test_published_preset_has_45m_parameters():
    config = build_config("ndt3", "ndt3_45m")
    model = NDT3(config, sessions=["s"], subjects={"s": "subject"}, behavior_dim=2)
    assert 44e6 < sum(p.numel() for p in model.parameters()) < 46e6  # MODELS.md: "45M: 1024 x 6 x 8 heads"


def test_recipe_parses_and_builds():
    from pathlib import Path

    from spikefm.train.config import load_recipe

    recipe = load_recipe(Path(__file__).parents[2] / "configs" / "ndt3_tiny.yaml")
    config = build_config(recipe.model.name, recipe.model.preset, **recipe.model.overrides)
    assert recipe.model.name == "ndt3" and "synth-3" not in recipe.data.sessions  # kept for adaptation
    assert get_spec("ndt3").make_tokenizer(config, **recipe.tokenizer).config.n_classes == 22
