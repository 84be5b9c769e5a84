"""Reading checkpoints safely, and checking that a checkpoint fits the recordings it is used on.

A checkpoint is a user-supplied file: it is read with ``torch.load(..., weights_only=True)``,
which rebuilds tensors and plain containers only and never imports or runs code named in the
file (a pickled ``os.system`` call is refused, not executed). spikefm's own checkpoints hold
nothing else: the recipe, data sizes and unit ids are plain dicts, lists, strings and numbers
(:func:`plain`), and the callbacks' states are tensors and numbers.

>>> plain({"n": __import__("numpy").int64(3), "ids": ("a", "b"), "path": __import__("pathlib").Path("x")})
{'n': 3, 'ids': ('a', 'b'), 'path': 'x'}
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from spikefm.data.recording import DataError, Recording

__all__ = ["CheckpointError", "safe_load", "plain", "unit_ids_of", "check_unit_ids"]


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, unsafe or not written by spikefm."""


def safe_load(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file without executing anything in it.

    Raises:
        CheckpointError: the file is missing, is not a torch checkpoint (random or truncated
            bytes), or holds Python objects other than tensors and plain data (a pickle that
            would run code when unpickled is refused here, before anything in it runs).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found (or not a file)")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic.startswith(b"\x80")):  # torch's zip format, or a pickle
        raise CheckpointError(f"{path} is not a readable checkpoint (neither torch's zip format nor a pickle)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects, not only tensors and plain data, and loading it "
            "could run code from the file. spikefm checkpoints never need that; only load files you trust with "
            f"other tools. (torch: {str(error).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, or not written by torch.save): {error}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def plain(value: Any) -> Any:
    """``value`` as plain JSON-like data (dict / list / tuple / str / int / float / bool / None).

    Numpy scalars and arrays become Python numbers and lists, paths and anything else become
    strings, so that ``weights_only`` loading accepts the result.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value) if type(value) in (list, tuple) else [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def unit_ids_of(recordings: Sequence[Recording]) -> dict[str, list[str]]:
    """Per session, its unit ids in order (what a checkpoint stores to recognise its neurons)."""
    return {r.session: [str(u) for u in r.units.ids] for r in recordings}


def check_unit_ids(trained: Mapping[str, Sequence[str]] | None, recordings: Sequence[Recording]) -> None:
    """Refuse recordings whose session the checkpoint knows but whose neurons differ.

    A model's readout and unit embeddings are indexed by the training recording's units; scoring
    a session with the same name but other neurons (or the same neurons in another order) gives
    numbers that mean nothing. Sessions the checkpoint never saw are left to the model.

    Args:
        trained: the checkpoint's ``unit_ids`` (None for checkpoints written before they were stored).
        recordings: the recordings about to be evaluated.

    Raises:
        DataError: naming the session and the first differing units.
    """
    if not trained:
        return
    for recording in recordings:
        expected = trained.get(recording.session)
        if expected is None:
            continue
        found = [str(u) for u in recording.units.ids]
        if found == list(expected):
            continue
        where = recording.source or recording.session
        if len(found) != len(expected):
            detail = f"{len(found)} units, the checkpoint was trained on {len(expected)}"
        elif sorted(found) == sorted(expected):
            detail = "the same unit ids in a different order"
        else:
            first = next(i for i, (a, b) in enumerate(zip(found, expected)) if a != b)
            detail = f"unit {first} is {found[first]!r}, the checkpoint's is {expected[first]!r}"
        raise DataError(
            f"{where}: session {recording.session!r} does not hold the neurons this checkpoint was trained on "
            f"({detail}); its scores would be meaningless. Evaluate on the training session's recording, or "
            "adapt the model to the new neurons first."
        )
