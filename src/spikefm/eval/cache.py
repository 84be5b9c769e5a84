"""On-disk cache of protocol results, keyed by a hash of everything that determines each one.

A key hashes the candidate (kind, model, preset, overrides, the resolved model config, search space, task),
the data's fingerprint, the configuration, the seed, the phase and the spikefm version, so ``spikefm bench``
resumes where it stopped and, after a change, recomputes only what the change touches. Entries are
JSON (scores, CPU seconds) and ``.npz`` arrays (test predictions); loading one never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from spikefm import __version__
from spikefm.eval.candidates import TrialScores

__all__ = ["ResultCache", "cache_key", "SCORES_FORMAT"]

FORMAT = 1  # bump when what an entry means changes
SCORES_FORMAT = 2  # test predictions: per scored sample with its trial (2: decoders at the recorded samples)


def cache_key(**parts: Any) -> str:
    """A stable hash of ``parts`` (JSON with sorted keys; numpy values become lists / floats)."""
    text = json.dumps({"spikefm": __version__, "format": FORMAT, **parts}, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


class ResultCache:
    """``root/<key[:2]>/<key>.json`` (+ ``.npz``) entries; ``root=None`` caches nothing."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root)

    def _path(self, key: str, suffix: str) -> Path | None:
        return None if self.root is None else self.root / key[:2] / f"{key}{suffix}"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key, ".json")
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"protocol cache entry {path} is damaged ({error}); delete it (and its .npz) to "
                             "recompute that result") from error

    def put(self, key: str, value: dict[str, Any]) -> None:
        path = self._path(key, ".json")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _private_tmp(path)
            tmp.write_text(json.dumps(value, default=_plain))
            tmp.replace(path)  # atomic: an interrupted write leaves no half entry

    def get_scores(self, key: str) -> tuple[TrialScores, dict[str, Any]] | None:
        """(test predictions, their metadata) or None."""
        meta, path = self.get(key), self._path(key, ".npz")
        if meta is None or path is None or not path.exists():
            return None
        with np.load(path, allow_pickle=False) as arrays:
            scores = TrialScores(meta["metric"], arrays["pred"], arrays["truth"], arrays["trial"], int(arrays["n"]))
        return scores, meta

    def put_scores(self, key: str, scores: TrialScores, meta: dict[str, Any]) -> None:
        path = self._path(key, ".npz")
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _private_tmp(path)
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **scores.arrays())
        tmp.replace(path)
        self.put(key, {**meta, "metric": scores.metric})


def _private_tmp(path: Path) -> Path:
    """A temporary name no other writer uses: two sittings sharing one cache may write the same (deterministic)
    entry at once, and a shared ``<key>.tmp`` made the slower writer's rename fail (2026-12-04)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
