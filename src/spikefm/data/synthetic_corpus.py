"""A heterogeneous synthetic corpus: groups of sessions that genuinely differ from each other.

:func:`spikefm.data.synthetic.generate` makes sessions that share one latent system; a
foundation-model corpus is more varied. Here sessions come in ``groups``; each group is one
:func:`generate` call with its own latent system (cycling through ``systems``), its own dynamics
(seed), unit-count range, firing-rate range, single-trial noise, drift and brain regions. Sessions
of one group share latents (transfer among them is easy); sessions of different groups do not, so
curation and scale have something to find. Each session's ``metadata`` records its ``group`` and
generating settings (ground truth for curation experiments, never read by models).

>>> recordings = generate_corpus(CorpusSynthConfig(n_sessions=8, groups=4))  # doctest: +SKIP
>>> sorted({r.metadata["group"] for r in recordings})  # doctest: +SKIP
[0, 1, 2, 3]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from spikefm.data.recording import Recording
from spikefm.data.synthetic import SyntheticConfig, generate

__all__ = ["CorpusSynthConfig", "group_configs", "generate_corpus", "iter_corpus"]

_REGIONS = ("M1", "PMd", "S1", "SMA", "PPC", "V1")


@dataclass(frozen=True)
class CorpusSynthConfig:
    """How varied a synthetic corpus is. Ranges are inclusive ``(low, high)``; each group draws from them.

    Attributes:
        n_sessions: sessions in all, dealt round-robin to the groups.
        groups: distinct generating systems (a group = one latent system instance + settings).
        systems: latent systems the groups cycle through (``rotational``, ``lorenz``).
        units: range of units per session (each group draws a sub-range).
        rates: range of mean firing rates in Hz (each group draws a sub-range, log-uniformly).
        noise: range of single-trial latent noise (std of the initial-state perturbation).
        drift: range of readout drift of units carried over between a group's sessions.
        n_trials: trials per session.
        seed: everything is deterministic given it.
    """

    n_sessions: int = 16
    groups: int = 4
    systems: tuple[str, ...] = ("rotational", "lorenz")
    units: tuple[int, int] = (20, 80)
    rates: tuple[float, float] = (1.0, 40.0)
    noise: tuple[float, float] = (0.05, 0.4)
    drift: tuple[float, float] = (0.0, 0.3)
    n_trials: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if self.groups < 1 or self.n_sessions < self.groups:
            raise ValueError(f"need 1 <= groups <= n_sessions, got groups={self.groups}, n_sessions={self.n_sessions}")
        for name in ("units", "rates", "noise", "drift"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a (low, high) range with 0 <= low <= high, got {(low, high)}")
        if self.units[0] < 2:
            raise ValueError(f"units must start at 2 or more, got {self.units}")


def group_configs(config: CorpusSynthConfig) -> list[SyntheticConfig]:
    """The :class:`SyntheticConfig` of each group (its sessions' count, system and drawn settings)."""
    rng = np.random.default_rng(config.seed)
    counts = np.bincount(np.arange(config.n_sessions) % config.groups, minlength=config.groups)
    out = []
    for group, count in enumerate(counts):
        lo, hi = sorted(int(v) for v in rng.integers(config.units[0], config.units[1] + 1, size=2))
        r_lo, r_hi = sorted(float(v) for v in np.exp(rng.uniform(*np.log(np.maximum(config.rates, 1e-3)), size=2)))
        n_regions = int(rng.integers(1, 4))
        regions = tuple(str(r) for r in rng.choice(_REGIONS, size=n_regions, replace=False))
        out.append(SyntheticConfig(
            n_sessions=int(count), units_per_session=(max(2, lo), max(2, hi)), n_trials=config.n_trials,
            latent_system=config.systems[group % len(config.systems)], rate_range=(r_lo, max(r_hi, r_lo * 1.5)),
            latent_noise=float(rng.uniform(*config.noise)), drift=float(rng.uniform(*config.drift)),
            regions=regions, regions_per_session=(1, n_regions), seed=config.seed * 1000 + group,
        ))
    return out


def iter_corpus(config: CorpusSynthConfig) -> Iterator[Recording]:
    """The corpus's recordings one group at a time (a whole corpus need never be in memory)."""
    for group, synthetic in enumerate(group_configs(config)):
        system = synthetic.latent_system
        for index, rec in enumerate(generate(synthetic).recordings):
            metadata = {**rec.metadata, "group": group, "latent_noise": synthetic.latent_noise,
                        "drift": synthetic.drift, "rate_range": list(synthetic.rate_range)}
            yield dataclasses.replace(rec, session=f"g{group}-{system[:3]}-{index}", subject=f"subject-g{group}",
                                      metadata=metadata)


def generate_corpus(config: CorpusSynthConfig) -> list[Recording]:
    """Every recording of the corpus, in group order."""
    return list(iter_corpus(config))
