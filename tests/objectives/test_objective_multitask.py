"""The multi-task objective: behaviour MSE per decoded key with targets + weighted masked Poisson NLL."""

from types import SimpleNamespace

import torch

from spikefm.objectives.behavior import behavior_mse
from spikefm.objectives.losses import poisson_nll
from spikefm.objectives.multitask import multitask_objective


def test_loss_is_each_keys_mse_plus_weighted_count_nll():
    torch.manual_seed(0)
    outputs = {
        "values/vel": torch.randn(2, 5, 2), "values/pos": torch.randn(2, 5, 1), "behavior": torch.randn(2, 5, 2),
        "unit_log_rates": torch.randn(4, 3), "unit_counts": torch.poisson(torch.ones(4, 3)),
        "unit_count_mask": torch.rand(4, 3) > 0.3, "count_weight": torch.tensor(0.5),
    }  # fmt: skip
    target = torch.randn(2, 5, 2)
    target[0, 1, 0] = float("nan")
    batch = SimpleNamespace(targets={"vel": target}, query_mask=torch.rand(2, 5) > 0.2)  # no "pos" target
    loss, metrics = multitask_objective(outputs, batch)
    nll = poisson_nll(outputs["unit_log_rates"], outputs["unit_counts"], outputs["unit_count_mask"])
    mse = behavior_mse(outputs["values/vel"], target, batch.query_mask)
    torch.testing.assert_close(loss, 0.5 * nll + mse)
    assert sorted(metrics) == ["count_nll", "vel/mse"]
    torch.testing.assert_close(metrics["vel/mse"], mse)
