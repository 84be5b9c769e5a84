"""Model registry: names -> (config dataclass, model class, presets, tokenizer, objective).

>>> from spikefm import models
>>> "ndt1" in models.list_models()
True
>>> model = models.create("ndt1", preset="tiny", n_units=10)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch.nn as nn

__all__ = ["ModelSpec", "register", "get_spec", "list_models", "create", "build_config", "is_causal"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build and train one registered model.

    Attributes:
        name: registry key.
        config_cls: the architecture config dataclass.
        model_cls: ``nn.Module`` built as ``model_cls(config, **data_sizes)``.
        presets: preset name -> dict of config fields (the published one cites its source).
        make_tokenizer: ``(config, **tokenizer_overrides) -> tokenizer`` the model reads.
        objective: ``(outputs, batch) -> (loss, metrics)``.
        sizes_from_data: ``(recordings, config) -> dict`` of constructor sizes read from the data
            (unit counts, unit keys, behaviour width...), never stored in presets.
        task: "self_supervised" (predicts spikes) or "decoding" (predicts behaviour).
        pack: collate packed (variable-length, no padding) rather than padded.
        multi_session: the model reads windows of many sessions in one run (False: one session).
        causal: whether an output at time ``t`` reads no input after ``t`` (so it could run online): a bool, or
            ``config -> bool`` for models whose config decides (see :func:`is_causal`). Causal models are
            compared with causal baselines (:func:`spikefm.eval.baselines.baselines_for`).
    """

    name: str
    config_cls: type
    model_cls: type[nn.Module]
    presets: dict[str, dict[str, Any]]
    make_tokenizer: Callable[[Any], Callable]
    objective: Callable
    sizes_from_data: Callable[..., dict[str, Any]]
    task: str = "self_supervised"
    pack: bool = False
    multi_session: bool = True
    causal: bool | Callable[[Any], bool] = False


_REGISTRY: dict[str, ModelSpec] = {}
_BUILTINS_LOADED = False  # not "registry empty": importing one model module first must not hide the rest


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtin() -> None:
    # Importing every module of this package registers its models; lazily, so `import spikefm`
    # stays light. A new model is one new file here, with no edit to this registry.
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    import importlib
    import pkgutil

    import spikefm.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("registry",) and not info.name.startswith("_"):
            importlib.import_module(f"spikefm.models.{info.name}")


def get_spec(name: str) -> ModelSpec:
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model '{name}'; available: {', '.join(list_models())}")
    return _REGISTRY[name]


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_config(name: str, preset: str = "tiny", **overrides: Any) -> Any:
    """The config of model ``name`` from ``preset`` with ``overrides``; unknown keys are an error."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise KeyError(f"model '{name}' has no preset '{preset}'; presets: {', '.join(spec.presets)}")
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = set(overrides) - known
    if unknown:
        raise KeyError(f"unknown config key(s) for {name}: {sorted(unknown)}; known: {sorted(known)}")
    return spec.config_cls(**{**spec.presets[preset], **overrides})


def create(name: str, *, preset: str = "tiny", data_sizes: dict[str, Any] | None = None, **overrides: Any) -> nn.Module:
    """Build model ``name`` from a preset, config overrides and sizes that come from the data.

    Args:
        name: registered model name (see :func:`list_models`).
        preset: preset name, e.g. "tiny" or the published one.
        data_sizes: sizes read from the data at build time (e.g. ``n_units``, ``behavior_dim``),
            never stored in presets.
        overrides: config fields to change.
    """
    spec = get_spec(name)
    config = build_config(name, preset, **overrides)
    return spec.model_cls(config, **(data_sizes or {}))


def is_causal(name: str, config: Any = None, *, preset: str = "tiny") -> bool:
    """Whether model ``name`` with ``config`` (default: its ``preset``'s) reads no input after each output time."""
    spec = get_spec(name)
    if not callable(spec.causal):
        return bool(spec.causal)
    return bool(spec.causal(config if config is not None else build_config(name, preset)))
