"""Ship a trained model as a folder: safetensors weights, a JSON config, a markdown model card.

``save_pretrained(model, dir, name=...)`` writes::

    dir/model.safetensors   every tensor of the state dict (and tensors inside extra states)
    dir/config.json         model name, full architecture config, data sizes, tokenizer overrides,
                            the non-tensor extra states (unit / session vocabularies), card facts
    dir/README.md           the model card: data it saw, code commit, scores, how to load it

``from_pretrained(dir)`` rebuilds the model from ``config.json`` and loads the weights with
``safetensors`` (never ``pickle``): loading a folder cannot run code from it.

>>> saved = save_pretrained(model, "runs/poyo_pretrained", name="poyo", data_sizes=sizes)  # doctest: +SKIP
>>> loaded = from_pretrained("runs/poyo_pretrained")  # doctest: +SKIP
>>> loaded.model, loaded.tokenizer()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from spikefm.models.registry import ModelSpec, build_config, get_spec

__all__ = ["PRETRAINED_FORMAT", "Pretrained", "save_pretrained", "from_pretrained", "is_pretrained_dir"]

PRETRAINED_FORMAT = "spikefm.pretrained"
_VERSION = 1
_WEIGHTS, _CONFIG, _CARD = "model.safetensors", "config.json", "README.md"
_EXTRA = "_extra_state"
_TENSOR_REF = "__tensor__"
_EXTRA_PREFIX = "__extra__/"  # tensors found inside extra states are stored under this prefix


@dataclass
class Pretrained:
    """A model rebuilt from a pretrained folder, with what it was built from.

    Attributes:
        model: the ``nn.Module`` (in eval mode).
        name: registry name (``spikefm.models.list_models()``).
        config: the architecture config dataclass.
        data_sizes: the constructor sizes read from the pretraining data.
        tokenizer_overrides: keyword overrides the tokenizer was built with.
        card: facts of the model card (``sessions``, ``scores``, ``commit``, ``notes``...).
    """

    model: nn.Module
    name: str
    config: Any
    data_sizes: dict[str, Any]
    tokenizer_overrides: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.name)

    def tokenizer(self) -> Callable:
        """The tokenizer the model was trained with."""
        return self.spec.make_tokenizer(self.config, **self.tokenizer_overrides)


def is_pretrained_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder written by :func:`save_pretrained`."""
    path = Path(path)
    return path.is_dir() and (path / _CONFIG).is_file() and (path / _WEIGHTS).is_file()


# ---------------------------------------------------------------------------- extra states <-> JSON
def _encode(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able copy of an extra state; tensors move to ``tensors`` under ``name`` and leave a reference."""
    if torch.is_tensor(value):
        tensors[name] = value.detach().cpu().contiguous().clone()
        return {_TENSOR_REF: name}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{name}: extra-state dict keys must be strings to be saved as JSON, got {list(value)[:3]}")
        return {k: _encode(v, f"{name}.{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{name}: cannot save a {type(value).__name__} in an extra state (JSON or tensors only)")


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR_REF}:
            return tensors[value[_TENSOR_REF]]
        return {k: _decode(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Round-trip through JSON (tuples become lists), failing with the offending value named."""
    try:
        return json.loads(json.dumps(value))
    except TypeError as error:
        raise TypeError(f"not JSON-serialisable: {error}") from error


# ---------------------------------------------------------------------------- config
def _config_from_json(name: str, raw: Mapping[str, Any]) -> Any:
    """The architecture config from its saved fields; lists go back to tuples where the field is a tuple."""
    spec = get_spec(name)
    reference = build_config(name, next(iter(spec.presets)))
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise KeyError(f"saved config of {name} has field(s) {unknown} this spikefm's {spec.config_cls.__name__} "
                       f"does not know; known: {sorted(known)}")
    fields = {k: tuple(v) if isinstance(v, list) and isinstance(getattr(reference, k, None), tuple) else v
              for k, v in raw.items()}
    return spec.config_cls(**fields)


def _commit() -> str:
    """The spikefm source commit (``git rev-parse HEAD`` beside this file; ``+dirty`` with local edits), or ``unknown``."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------- save / load
def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    *,
    name: str,
    data_sizes: Mapping[str, Any],
    config: Any = None,
    tokenizer_overrides: Mapping[str, Any] | None = None,
    sessions: Sequence[str] = (),
    scores: Mapping[str, float] | None = None,
    notes: str = "",
) -> Path:
    """Write ``model`` to ``directory`` (created) as safetensors + JSON config + model card.

    Args:
        model: a registered model (``spikefm.models.create``-able).
        name: its registry name.
        data_sizes: the sizes it was built with (``spec.sizes_from_data(...)``).
        config: its architecture config; default ``model.config``.
        tokenizer_overrides: overrides its tokenizer was built with.
        sessions: the sessions it was trained on (for the card).
        scores: named scores for the card, e.g. ``{"val vel R2": 0.71}``.
        notes: free text for the card (data source, recipe, steps...).

    Returns:
        The directory.
    """
    from safetensors.torch import save_file

    get_spec(name)  # fail early on an unknown name
    config = model.config if config is None else config
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    for key, value in model.state_dict().items():
        if key == _EXTRA or key.endswith("." + _EXTRA):
            extra[key] = _encode(value, _EXTRA_PREFIX + key, tensors)
        else:
            tensors[key] = value.detach().cpu().contiguous().clone()  # clone: no shared storage in safetensors
    card = {
        "sessions": list(sessions), "scores": dict(scores or {}), "notes": notes, "commit": _commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters()),
    }
    document = {
        "format": PRETRAINED_FORMAT, "version": _VERSION, "model": name,
        "config": _plain(dataclasses.asdict(config)), "data_sizes": _plain(dict(data_sizes)),
        "tokenizer_overrides": _plain(dict(tokenizer_overrides or {})), "extra_state": extra, "card": _plain(card),
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / _WEIGHTS), metadata={"format": PRETRAINED_FORMAT, "model": name})
    (directory / _CONFIG).write_text(json.dumps(document, indent=2))
    (directory / _CARD).write_text(model_card(document))
    return directory


def from_pretrained(directory: str | Path, *, map_location: str | torch.device = "cpu") -> Pretrained:
    """Rebuild the model saved in ``directory`` by :func:`save_pretrained` (no unpickling).

    Raises:
        FileNotFoundError: the folder lacks ``config.json`` or ``model.safetensors``.
        ValueError: the folder is not a spikefm pretrained folder, or a newer format version.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    if not is_pretrained_dir(directory):
        raise FileNotFoundError(f"{directory} is not a pretrained folder: it needs {_CONFIG} and {_WEIGHTS} "
                                "(written by spikefm.models.pretrained.save_pretrained or `spikefm pretrain`)")
    document = json.loads((directory / _CONFIG).read_text())
    if document.get("format") != PRETRAINED_FORMAT:
        raise ValueError(f"{directory / _CONFIG}: format is {document.get('format')!r}, not {PRETRAINED_FORMAT!r}")
    if int(document.get("version", 0)) > _VERSION:
        raise ValueError(f"{directory}: format version {document['version']} is newer than this spikefm's "
                         f"({_VERSION}); upgrade spikefm")
    name = document["model"]
    spec = get_spec(name)
    config = _config_from_json(name, document["config"])
    tensors = load_file(str(directory / _WEIGHTS), device=str(map_location))
    state = {k: v for k, v in tensors.items() if not k.startswith(_EXTRA_PREFIX)}
    state.update({k: _decode(v, tensors) for k, v in document["extra_state"].items()})
    model = spec.model_cls(config, **document["data_sizes"])
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    return Pretrained(model=model, name=name, config=config, data_sizes=document["data_sizes"],
                      tokenizer_overrides=document["tokenizer_overrides"], card=document["card"])


def model_card(document: Mapping[str, Any]) -> str:
    """The markdown model card of a saved model's ``config.json`` document."""
    card = document["card"]
    sessions = card.get("sessions") or []
    shown = ", ".join(f"`{s}`" for s in sessions[:20]) + (f" (+{len(sessions) - 20} more)" if len(sessions) > 20 else "")
    lines = [
        f"# {document['model']} (spikefm pretrained)", "",
        f"- parameters: {card.get('parameters', 0):,}",
        f"- spikefm commit: `{card.get('commit', 'unknown')}`; torch {card.get('torch', '?')}; "
        f"saved {card.get('created', '?')}",
        f"- data: {len(sessions)} session(s){': ' + shown if sessions else ''}",
    ]
    if card.get("notes"):
        lines.append(f"- notes: {card['notes']}")
    scores = card.get("scores") or {}
    if scores:
        lines += ["", "| score | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in scores.items()]
    lines += [
        "", "## Load", "", "```python", "from spikefm.models.pretrained import from_pretrained",
        "pretrained = from_pretrained('.')  # safetensors + JSON: nothing is unpickled",
        "model, tokenizer = pretrained.model, pretrained.tokenizer()", "```", "",
        "Fine-tune on a new session: `spikefm finetune . --data NEW_SESSION.h5 --mode recalibrate`.", "",
        "## Architecture config", "", "```json", json.dumps(document["config"], indent=2), "```", "",
    ]
    return "\n".join(lines)
