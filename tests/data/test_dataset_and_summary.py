import numpy as np
import pytest
from torch.utils.data import DataLoader

from spikefm.data.dataset import WindowDataset
from spikefm.data.recording import Recording, SpikeTrains, Units
from spikefm.data.sampling import SequentialWindowSampler
from spikefm.data.summary import summarize
from spikefm.tokenize.base import collate
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer


def _recording():
    return Recording(
        spikes=SpikeTrains(np.array([0.005, 0.5, 1.2, 2.9]), np.array([0, 1, 0, 0])),
        units=Units(ids=["a", "b", "c"]), start=0.0, end=3.0,
    )


def test_loader_over_sampler_conserves_spikes():
    rec = _recording()
    tokenizer = BinnedTokenizer(BinnedConfig(bin_size=0.1, query="none"))
    loader = DataLoader(WindowDataset([rec], tokenizer), sampler=SequentialWindowSampler([rec], 1.0),
                        batch_size=2, collate_fn=collate)
    total = sum(int(batch.values.sum()) for batch in loader)
    assert total == rec.n_spikes


def test_dataset_rejects_integer_keys():
    with pytest.raises(TypeError, match="WindowSpec"):
        WindowDataset([_recording()], BinnedTokenizer())[0]


def test_summary_counts_silent_units_and_sparsity():
    s = summarize(_recording())
    assert (s.n_units, s.n_spikes, s.silent_units) == (3, 4, 1)
    # 3 units x 3000 1-ms bins, 4 occupied
    assert s.empty_bin_fraction[0.001] == pytest.approx(1 - 4 / 9000)
    assert s.rate_quantiles[50] == pytest.approx(1 / 3)
