"""MtM: every masking scheme's hidden inputs never reach the prediction; causal prompt; stitchers."""

from dataclasses import replace

import pytest
import torch

from spikefm.models.mtm import MtM
from spikefm.models.registry import build_config, get_spec
from spikefm.objectives.masking import MaskingScheme
from spikefm.tokenize.base import collate

QUIET = {"dropout": 0.0, "dropout_embedding": 0.0}


def _setup(dataset, **overrides):
    spec = get_spec("mtm")
    config = build_config("mtm", "tiny", **overrides)
    model = MtM(config, **spec.sizes_from_data(dataset.recordings, config))
    tokenizer = spec.make_tokenizer(config)
    windows = [rec.window(t0, t0 + 1.0) for rec in dataset.recordings for t0 in rec.trials.start[:4]]
    return model, collate([tokenizer(w) for w in windows])


@pytest.mark.parametrize("scheme", [s.value for s in MaskingScheme])
def test_each_scheme_hides_its_targets_from_the_input(small_dataset, scheme):
    model, batch = _setup(small_dataset, schemes=(scheme,), **QUIET)
    model.train()
    torch.manual_seed(4)
    first = model(batch)
    scored = first["loss_mask"]
    real, heldout, _ = model.unit_fields(batch)
    assert (scored & ~heldout[:, None, :]).any(), f"{scheme} hid no held-in entry"
    torch.manual_seed(4)
    second = model(replace(batch, values=torch.where(scored, batch.values + 3, batch.values)))
    torch.testing.assert_close(first["log_rates"], second["log_rates"])
    torch.testing.assert_close(first["loss_mask"], second["loss_mask"])


def test_region_schemes_hide_whole_regions(small_dataset):
    model, batch = _setup(small_dataset, schemes=("inter_region",), **QUIET)
    model.train()
    torch.manual_seed(0)
    scored = model(batch)["loss_mask"]
    real, heldout, regions = model.unit_fields(batch)
    for b in range(batch.batch_size):
        units = scored[b].any(0) & ~heldout[b]
        picked = regions[b][units].unique()
        assert picked.numel() == 1  # one region per sample
        members = (regions[b] == picked) & ~heldout[b]
        assert torch.equal(units, members)  # all of it


def test_causal_prompt_never_looks_ahead(small_dataset):
    model, batch = _setup(small_dataset, **QUIET)
    model.eval()
    nothing = torch.zeros(batch.values.shape, dtype=torch.bool)
    future = torch.zeros_like(batch.values)
    future[:, 30:] = 2
    with torch.no_grad():
        a = model.predict_masked(batch, nothing, "causal")
        b = model.predict_masked(replace(batch, values=batch.values + future), nothing, "causal")
        c = model.predict_masked(replace(batch, values=batch.values + future), nothing, "neuron")
    torch.testing.assert_close(a[:, :30], b[:, :30])
    assert not torch.allclose(a[:, :30], c[:, :30])  # the neuron prompt attends both ways


def test_predict_masked_hides_what_it_is_told_and_heldout_units(small_dataset):
    model, batch = _setup(small_dataset)
    model.eval()
    real, heldout, _ = model.unit_fields(batch)
    hide = torch.zeros(batch.values.shape, dtype=torch.bool)
    hide[..., 0] = True
    perturb = hide | heldout[:, None, :]
    with torch.no_grad():
        a = model.predict_masked(batch, hide, "neuron")
        b = model.predict_masked(replace(batch, values=torch.where(perturb, batch.values + 5, batch.values)), hide,
                                 "neuron")
    torch.testing.assert_close(a, b)


def test_sessions_get_their_own_stitchers_and_padding_stays_out(small_dataset):
    model, batch = _setup(small_dataset)
    model.eval()
    with torch.no_grad():
        out = model(batch)
    n0, n1 = (r.n_units for r in small_dataset.recordings)
    width = max(n0, n1)
    assert out["log_rates"].shape == (batch.batch_size, 50, width)
    narrow = 0 if n0 < n1 else 4  # rows of the session with fewer units
    assert not out["log_rates"][narrow, :, min(n0, n1):].any()
    assert not out["loss_mask"][narrow, :, min(n0, n1):].any()
    assert set(model.stitch_in) == {"s0", "s1"}
    with pytest.raises(KeyError, match="stitcher"):
        model(replace(batch, sessions=("unknown",) * batch.batch_size))


def test_published_preset_carries_mtm_values():
    config = build_config("mtm", "ibl")
    assert (config.dim, config.depth, config.heads, config.ffn_dim, config.dropout) == (512, 5, 8, 1024, 0.4)
    assert (config.neuron_ratio, config.causal_ratio, config.intra_ratio) == (0.3, 0.6, 0.3)


def test_a_new_session_gets_stitchers_and_recalibration_moves_only_them(small_dataset):
    """add_session + freeze_for_recalibration (MtM's transfer to an unseen session): the new session's stitchers and
    session token train, every pretrained weight stays put, and a region the model never saw joins its vocabulary."""
    from spikefm.data.synthetic import SyntheticConfig, generate
    from spikefm.objectives.losses import poisson_nll

    spec = get_spec("mtm")
    config = build_config("mtm", "tiny", region_token=True, **QUIET)
    old = small_dataset.recordings[0]
    model = MtM(config, **spec.sizes_from_data([old], config))
    new = generate(SyntheticConfig(n_sessions=1, units_per_session=(11, 11), n_trials=8, seed=9,
                                   regions=("M1", "PMd", "V4"), regions_per_session=(3, 3))).recordings[0]
    new = replace(new, session="unseen")
    unseen_regions = sorted(set(map(str, new.units.region)) - set(model.regions))
    assert unseen_regions, "the test needs a region the pretrained model has not seen"
    with pytest.raises(KeyError, match="add_session"):
        model.freeze_for_recalibration(new)
    model.add_session(new)
    with pytest.raises(ValueError, match="already known"):
        model.add_session(new)
    assert set(unseen_regions) <= set(model.regions) and all(r in model.region_embed for r in unseen_regions)
    tokenizer = spec.make_tokenizer(config)
    batch = collate([tokenizer(new.window(t0, t0 + 1.0)) for t0 in new.trials.start[:4]])
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    params = model.freeze_for_recalibration(new)
    optimizer = torch.optim.SGD(params, lr=0.5)
    model.train()
    for _ in range(3):
        out = model(batch)
        loss = poisson_nll(out["log_rates"], out["counts"], out["loss_mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    slot = model._slot["unseen"]
    assert moved and all(k.startswith((f"stitch_in.{slot}.", f"stitch_out.{slot}.", "session_embed.")) for k in moved)
    row = model.session_embed.keys.index(old.session)
    torch.testing.assert_close(after["session_embed.weight"][row], before["session_embed.weight"][row])
