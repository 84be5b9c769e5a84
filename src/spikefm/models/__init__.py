"""Published models as recipes of spikefm parts: ``create(name, preset=..., data_sizes=..., **overrides)``."""

from spikefm.models.registry import ModelSpec, build_config, create, get_spec, list_models, register

__all__ = ["ModelSpec", "build_config", "create", "get_spec", "list_models", "register"]
