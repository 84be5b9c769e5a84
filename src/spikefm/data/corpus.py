"""A corpus: many recordings a user points at (a folder or a manifest), opened lazily.

Only each session's header (units, trials, behaviour names and widths, the coarse spike index)
is read when the corpus opens; spikes stay on disk and every window is read from its file when a
sampler asks for it (:class:`~spikefm.data.store.LazyRecording`). Files in other formats spikefm
reads (NWB, MATLAB, ``.npz`` counts, spike-time folders) are converted once to spikefm stores in a
cache folder and read lazily from there. So memory grows with the number of sessions' headers,
not with their spikes (measured in docs/results/scale.md).

A manifest is a text file with one recording path per line (relative to the manifest's
folder; ``#`` comments allowed), or the JSON written by :func:`write_manifest`.

>>> corpus = Corpus.open("runs/corpus")  # doctest: +SKIP
>>> len(corpus), corpus.sessions[:2]  # doctest: +SKIP
(256, ['synth-0', 'synth-1'])
>>> window = corpus.recordings[3].window(0.0, 1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import h5py

from spikefm.data.recording import DataError
from spikefm.data.store import LazyRecording, load, write_recording

__all__ = ["BehaviorShape", "CorpusRecording", "Corpus", "write_manifest", "read_manifest", "RECORDING_SUFFIXES"]

RECORDING_SUFFIXES = (".h5", ".hdf5", ".nwb", ".mat", ".npz")
_MANIFEST_FORMAT = "spikefm.manifest"
# h5py gives every dataset a 1 MiB chunk cache by default: with hundreds of stores open that, not the
# spikes, was the memory (measured: 594 MiB peak at 256 sessions vs 262 at 16). Our chunks are 64 KiB.
CHUNK_CACHE_BYTES = 64 * 1024
MAX_OPEN_FILES = 64  # per process; the least recently read store is closed (and reopened when read again)
_open_files: "OrderedDict[int, CorpusRecording]" = OrderedDict()


@dataclass(frozen=True)
class BehaviorShape:
    """What a lazily opened session says about one behaviour series without reading it."""

    name: str
    dim: int
    columns: tuple[str, ...]
    n_samples: int


class CorpusRecording(LazyRecording):
    """A :class:`LazyRecording` whose ``behavior`` maps names to :class:`BehaviorShape` (no samples read).

    Models size themselves from ``recording.behavior[name].dim``, ``unit_keys()``, ``session``,
    ``subject``, ``units`` and ``trials``: all available from the header, so a model is built from
    a corpus without loading any session. The file is closed after the header is read and
    reopened by the first window read.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        handle = self._file()
        self.behavior: dict[str, BehaviorShape] = {}
        for name in self.behavior_names:
            values = handle["behavior"][name]["values"]
            dim = int(values.shape[1]) if len(values.shape) > 1 else 1
            self.behavior[name] = BehaviorShape(name, dim, self._columns[name], int(values.shape[0]))
        self.close()

    _h5py_options = {"rdcc_nbytes": CHUNK_CACHE_BYTES}

    def _file(self):
        """The open handle (small chunk cache); at most MAX_OPEN_FILES stay open per process."""
        handle = super()._file()
        _open_files.pop(id(self), None)
        _open_files[id(self)] = self
        while len(_open_files) > MAX_OPEN_FILES:
            _, oldest = _open_files.popitem(last=False)
            oldest.close()
        return handle

    def close(self) -> None:
        _open_files.pop(id(self), None)
        super().close()


class Corpus:
    """Many recordings, opened lazily, in a fixed order (the sorted paths, or the manifest's order).

    Args:
        paths: recording files (any format :func:`spikefm.data.store.load` reads).
        cache_dir: where non-store files are converted to spikefm stores (default: beside each file,
            in ``.spikefm_cache/``).

    Raises:
        DataError: no paths, a missing file, or two recordings with the same session id.
    """

    def __init__(self, paths: Sequence[str | Path], *, cache_dir: str | Path | None = None) -> None:
        if not paths:
            raise DataError("a corpus needs at least one recording path")
        self.paths = [Path(p) for p in paths]
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise DataError(f"corpus recordings not found: {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.recordings: list[CorpusRecording] = [CorpusRecording(self._store_path(p)) for p in self.paths]
        sessions = [r.session for r in self.recordings]
        duplicated = sorted({s for s in sessions if sessions.count(s) > 1})
        if duplicated:
            raise DataError(f"corpus has duplicate session ids {duplicated[:5]}; session ids must be unique")

    @classmethod
    def open(cls, source: str | Path, *, cache_dir: str | Path | None = None) -> "Corpus":
        """A corpus from a folder (every recording file in it, sorted) or a manifest file."""
        source = Path(source)
        if source.is_dir():
            paths = sorted(p for p in source.iterdir() if p.suffix in RECORDING_SUFFIXES and p.is_file())
            if not paths:
                raise DataError(f"{source}: no recording files ({', '.join(RECORDING_SUFFIXES)}) in this folder")
            return cls(paths, cache_dir=cache_dir)
        if source.is_file():
            return cls(read_manifest(source), cache_dir=cache_dir)
        raise DataError(f"corpus {source} not found (give a folder of recordings or a manifest file)")

    def _store_path(self, path: Path) -> Path:
        """``path`` itself when it is a spikefm store, else its cached store (written once)."""
        if path.is_file() and h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                if "spikefm_format" in handle.attrs:
                    return path
        cache = (self.cache_dir or path.parent / ".spikefm_cache") / f"{path.stem}.h5"
        if not cache.exists() or cache.stat().st_mtime < path.stat().st_mtime:
            write_recording(load(path), cache)
        return cache

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.recordings)

    def __iter__(self) -> Iterator[CorpusRecording]:
        return iter(self.recordings)

    @property
    def sessions(self) -> list[str]:
        return [r.session for r in self.recordings]

    def select(self, sessions: Sequence[str]) -> "Corpus":
        """The sub-corpus of ``sessions`` (in the given order); unknown ids are an error."""
        index = {s: i for i, s in enumerate(self.sessions)}
        unknown = [s for s in sessions if s not in index]
        if unknown:
            raise DataError(f"sessions {unknown[:5]} are not in the corpus ({len(self)} sessions)")
        out = object.__new__(Corpus)
        out.paths = [self.paths[index[s]] for s in sessions]
        out.cache_dir = self.cache_dir
        out.recordings = [self.recordings[index[s]] for s in sessions]
        return out

    def close(self) -> None:
        """Close every open file (a later read reopens it)."""
        for recording in self.recordings:
            recording.close()

    def __repr__(self) -> str:
        return f"Corpus({len(self)} sessions, units={sum(r.n_units for r in self.recordings)})"


# ---------------------------------------------------------------------------- manifests
def write_manifest(paths: Sequence[str | Path], out: str | Path, *, scores: Mapping[str, float] | None = None,
                   info: Mapping[str, Any] | None = None) -> Path:
    """Write a JSON manifest of ``paths`` (stored relative to the manifest's folder when possible).

    Args:
        scores: optional per-path (or per-session) scores kept beside the list, e.g. a curation ranking.
        info: anything else worth keeping (how the list was made).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.absolute()
    entries = []
    for path in paths:
        path = Path(path).absolute()
        try:
            entries.append(str(path.relative_to(base)))
        except ValueError:
            entries.append(str(path))
    document = {"format": _MANIFEST_FORMAT, "recordings": entries, "scores": dict(scores or {}), "info": dict(info or {})}
    out.write_text(json.dumps(document, indent=2))
    return out


def read_manifest(path: str | Path) -> list[Path]:
    """Recording paths of a manifest: JSON from :func:`write_manifest`, or text with one path per line."""
    path = Path(path)
    text = path.read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        entries = [e for e in entries if e]
    else:
        if not isinstance(document, dict) or document.get("format") != _MANIFEST_FORMAT:
            raise DataError(f"{path}: JSON manifest must have format {_MANIFEST_FORMAT!r} and a 'recordings' list")
        entries = list(document["recordings"])
    if not entries:
        raise DataError(f"manifest {path} lists no recordings")
    return [p if p.is_absolute() else path.parent / p for p in map(Path, entries)]
