"""A torch Dataset over many recordings + a tokenizer, keyed by the samplers' window specs.

The sampler decides which windows; the dataset cuts and tokenizes them (on CPU, in loader
workers); ``collate`` batches them:

>>> from torch.utils.data import DataLoader  # doctest: +SKIP
>>> loader = DataLoader(WindowDataset(recordings, tokenizer), sampler=sampler,
...                     batch_size=32, collate_fn=collate)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch.utils.data import Dataset

from spikefm.data.recording import Recording, Window
from spikefm.data.sampling import WindowSpec

__all__ = ["WindowDataset"]


class WindowDataset(Dataset):
    """Map-style dataset whose keys are :class:`WindowSpec` (pass a spikefm sampler as ``sampler``).

    Args:
        recordings: in-memory :class:`Recording` or lazily read store files
            (:class:`spikefm.data.store.LazyRecording`); anything with ``window(t0, t1)``.
        tokenizer: ``Window -> Tokens``.
        transform: optional ``Window -> Window`` applied before tokenizing (augmentation).
    """

    def __init__(
        self,
        recordings: Sequence[Recording],
        tokenizer: Callable,
        *,
        transform: Callable[[Window], Window] | None = None,
    ) -> None:
        if not recordings:
            raise ValueError("WindowDataset needs at least one recording")
        self.recordings = list(recordings)
        self.tokenizer = tokenizer
        self.transform = transform

    def __getitem__(self, spec: WindowSpec):
        if not isinstance(spec, WindowSpec):
            raise TypeError(
                f"WindowDataset is indexed by WindowSpec (use a spikefm sampler), got {type(spec).__name__}"
            )
        window = self.recordings[spec.recording_index].window(spec.t0, spec.t1)
        if self.transform is not None:
            window = self.transform(window)
        return self.tokenizer(window)

    def __len__(self) -> int:
        # Map-style datasets need a length; windows are defined by the sampler, not by an index range.
        return len(self.recordings)
