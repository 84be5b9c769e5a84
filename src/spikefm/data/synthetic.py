"""Synthetic spiking data with known ground truth: the library's default testbed.

A small latent dynamical system, shared by every session, drives Poisson neurons:

    latents x(t) [D]  ->  log-rate = W_u x(t) + b_u  ->  rate_u(t) = exp(...)  ->  spikes
    hand_vel(t) = W_beh x(t) + noise                     (one readout for all sessions)

Two latent systems:

- ``"rotational"`` (reaching-like): each trial has a condition (reach direction theta).
  During preparation the latents ramp to a condition-dependent initial state that lies in
  the behaviour readout's null space; after ``move_onset_time`` pairs of latent dims
  rotate and decay, which swings the state into the readout's potent space: the hand
  moves in direction theta with a bell-shaped speed profile.
- ``"lorenz"`` (chaotic): the condition is the Lorenz initial state; the system evolves
  from move onset on.

Sessions share the latents but not the neurons: each session records a different set of
units, except that a fraction of units carry over from the previous session ("same subject,
drift") with the same id and a slightly perturbed readout. Units belong to brain regions,
and each region reads a different subset of latent dims, so predicting one region from
another is meaningful but not trivial.

Rates are piecewise constant on a ``rate_bin_size`` grid (default 5 ms, latents evaluated at
the bin centre) and spikes are an exact inhomogeneous Poisson process for those rates: a
Poisson count per grid bin, each spike placed uniformly inside its bin. So the expected
count in any bin is exactly the integral of the stored rate (:meth:`SyntheticDataset.true_rate_counts`),
and a model's bits/spike can be compared with the oracle's.

>>> data = generate(SyntheticConfig(n_sessions=2, n_trials=10, seed=1))
>>> [r.session for r in data.recordings]
['synth-0', 'synth-1']
>>> data.true_rate_counts(0, 0.02, 0.0, 1.0).shape == (50, data.recordings[0].n_units)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from spikefm.data.recording import Intervals, Recording, SpikeTrains, TimeSeries, Units

__all__ = ["SyntheticConfig", "SyntheticDataset", "generate", "make_recording"]

_SYSTEMS = ("rotational", "lorenz")
_SILENT_RATE_RANGE = (0.05, 0.45)  # Hz; "near-silent" units stay below 0.5 Hz
_SPEED_GAIN = 2.0  # behaviour readout gain: peak hand speed ~1 a.u.
_CIS_TIMESCALE = 0.15  # s; condition-independent bump after move onset (odd latent dim)
_LORENZ_SPEED = 1.0  # Lorenz time units per second: one wing loop takes ~0.7 s
_LORENZ_PARAMS = (10.0, 28.0, 8.0 / 3.0)  # sigma, rho, beta (the classic chaotic regime)


@dataclass(frozen=True)
class SyntheticConfig:
    """How to generate a synthetic multi-session dataset. Validated on construction.

    Attributes:
        n_sessions: number of sessions (recordings).
        units_per_session: inclusive (min, max) number of units; each session draws its own.
        n_trials: trials per session.
        trial_duration: seconds per trial.
        inter_trial_interval: seconds of gap after each trial (latents fade to rest).
        n_conditions: conditions (reach directions, or Lorenz initial states).
        latent_system: ``"rotational"`` or ``"lorenz"``.
        latent_dim: latent dimensionality; None picks 8 (rotational) or 3 (lorenz, required).
        move_onset_time: seconds from trial start to movement onset (mean).
        move_onset_jitter: per-trial move onset varies uniformly by +- this many seconds.
        latent_noise: std of per-trial noise on the initial latent state (single-trial variability).
        rate_range: (min, max) Hz of active units' mean rates (drawn log-uniformly).
        modulation: typical std of a unit's log-rate over trials
            (nats; per unit x0.5-1.5). Larger makes single neurons more informative.
        max_rate: cap (Hz) on a unit's peak rate over a reference set of trials; the modulation
            of units that would exceed it is reduced. Other trials can exceed it a little.
        silent_fraction: fraction of units firing below 0.5 Hz.
        behavior_dim: dims of ``hand_vel``.
        behavior_noise: std of additive noise on ``hand_vel`` (a.u.; peak speed is ~1).
        overlap_fraction: fraction of a session's units carried over from the previous session.
        drift: relative perturbation of a carried-over unit's readout (0 = identical).
        regions: all brain-region labels; each reads its own subset of latent dims.
        regions_per_session: inclusive (min, max) number of regions a session records from.
        region_latent_fraction: fraction of latent dims each region reads.
        heldout_fraction: fraction of each session's units flagged ``heldout`` (NLB-style).
        split_fractions: (train, val, test) fractions of trials, assigned at random.
        rate_bin_size: seconds; resolution of the ground-truth rates and latents.
        behavior_bin_size: seconds between ``hand_vel`` samples; a multiple of ``rate_bin_size``.
        seed: everything is deterministic given the seed.
    """

    n_sessions: int = 4
    units_per_session: tuple[int, int] = (40, 60)
    n_trials: int = 100
    trial_duration: float = 1.0
    inter_trial_interval: float = 0.2
    n_conditions: int = 8
    latent_system: str = "rotational"
    latent_dim: int | None = None
    move_onset_time: float = 0.3
    move_onset_jitter: float = 0.05
    latent_noise: float = 0.15
    rate_range: tuple[float, float] = (1.0, 30.0)
    modulation: float = 0.8
    max_rate: float = 80.0
    silent_fraction: float = 0.05
    behavior_dim: int = 2
    behavior_noise: float = 0.05
    overlap_fraction: float = 0.3
    drift: float = 0.1
    regions: tuple[str, ...] = ("M1", "PMd", "S1")
    regions_per_session: tuple[int, int] = (2, 3)
    region_latent_fraction: float = 0.75
    heldout_fraction: float = 0.25
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    rate_bin_size: float = 0.005
    behavior_bin_size: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        # YAML gives lists; keep tuples so the config stays hashable and immutable.
        for name in ("units_per_session", "rate_range", "regions", "regions_per_session", "split_fractions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.latent_system not in _SYSTEMS:
            raise ValueError(f"latent_system must be one of {_SYSTEMS}, got {self.latent_system!r}")
        if self.latent_dim is None:
            object.__setattr__(self, "latent_dim", 8 if self.latent_system == "rotational" else 3)
        self._check_counts()
        self._check_times()
        self._check_fractions()

    def _check_counts(self) -> None:
        sizes = self.units_per_session
        if not (len(sizes) == 2 and 2 <= sizes[0] <= sizes[1]):
            raise ValueError(f"units_per_session must be (min, max) with 2 <= min <= max, got {sizes}")
        for name in ("n_sessions", "n_trials", "n_conditions", "behavior_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_system == "lorenz" and self.latent_dim != 3:
            raise ValueError(f"the lorenz system has latent_dim 3, got {self.latent_dim}; leave latent_dim=None")
        if self.latent_system == "rotational" and self.latent_dim < 2:
            raise ValueError(f"the rotational system needs latent_dim >= 2 (one plane), got {self.latent_dim}")
        if not self.regions or len(set(self.regions)) != len(self.regions):
            raise ValueError(f"regions must be non-empty and unique, got {self.regions}")
        r_lo, r_hi = self.regions_per_session
        if not (1 <= r_lo <= r_hi <= len(self.regions)):
            raise ValueError(
                f"regions_per_session must satisfy 1 <= min <= max <= len(regions)={len(self.regions)}, "
                f"got {self.regions_per_session}"
            )

    def _check_times(self) -> None:
        if not (self.trial_duration > 0 and self.inter_trial_interval >= 0):
            raise ValueError("trial_duration must be > 0 and inter_trial_interval >= 0")
        onset, jitter = self.move_onset_time, self.move_onset_jitter
        if not (jitter >= 0 and onset - jitter >= 0 and onset + jitter < self.trial_duration):
            raise ValueError(
                f"move onset {onset} +- {jitter} s must lie inside the trial [0, {self.trial_duration}) s"
            )
        if not self.rate_bin_size > 0:
            raise ValueError(f"rate_bin_size must be > 0, got {self.rate_bin_size}")
        ratio = self.behavior_bin_size / self.rate_bin_size
        if not (ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-6):
            raise ValueError(
                f"behavior_bin_size ({self.behavior_bin_size}) must be a whole multiple of "
                f"rate_bin_size ({self.rate_bin_size})"
            )
        lo, hi = self.rate_range
        if not (0 < lo < hi < self.max_rate):
            raise ValueError(
                f"rate_range must be (min, max) Hz with 0 < min < max < max_rate ({self.max_rate}), "
                f"got {self.rate_range}"
            )

    def _check_fractions(self) -> None:
        for name in ("silent_fraction", "overlap_fraction", "region_latent_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(
                f"heldout_fraction must be in [0, 1) (some units must stay held-in), got {self.heldout_fraction}"
            )
        for name in ("latent_noise", "behavior_noise", "drift", "modulation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be three non-negative numbers summing to 1, got {fractions}")

    @property
    def trial_period(self) -> float:
        """Seconds from one trial start to the next."""
        return self.trial_duration + self.inter_trial_interval


@dataclass(frozen=True)
class SyntheticDataset:
    """Recordings plus the ground truth that generated them (one list entry per session).

    Shapes: T = bins of ``rate_bin_size`` covering the session, N = units, D = latent dim,
    B = behaviour dim. Row ``k`` of the arrays covers ``[k * rate_bin_size, (k+1) * rate_bin_size)``.

    Attributes:
        config: the generating config.
        recordings: one :class:`Recording` per session (``synth-0``, ``synth-1``...).
        true_rates: float32 [T, N] firing rates in Hz (piecewise constant per bin).
        latents: float32 [T, D] latent state at each bin centre.
        true_behavior: float32 [T, B] noise-free ``hand_vel``.
        readout_weights: [N, D] per session; log-rate = latents @ W.T + bias.
        readout_bias: [N] per session.
        behavior_readout: [B, D] shared by all sessions; true_behavior = latents @ W_beh.T.
        region_latent_dims: region label -> indices of the latent dims that region reads.
        rate_bin_size: seconds per row of the ground-truth arrays.
    """

    config: SyntheticConfig
    recordings: list[Recording]
    true_rates: list[np.ndarray]
    latents: list[np.ndarray]
    true_behavior: list[np.ndarray]
    readout_weights: list[np.ndarray]
    readout_bias: list[np.ndarray]
    behavior_readout: np.ndarray
    region_latent_dims: dict[str, np.ndarray] = field(default_factory=dict)
    rate_bin_size: float = 0.005

    def session_index(self, session: int | str) -> int:
        """Index of a session given its index or its id (``"synth-2"``)."""
        ids = [r.session for r in self.recordings]
        if isinstance(session, str):
            if session not in ids:
                raise KeyError(f"unknown session {session!r}; available: {ids}")
            return ids.index(session)
        if not 0 <= session < len(ids):
            raise IndexError(f"session index {session} out of range for {len(ids)} sessions")
        return int(session)

    def true_rate_counts(
        self, session: int | str, bin_size: float, t0: float | None = None, t1: float | None = None
    ) -> np.ndarray:
        """Expected spike counts per bin, float64 [T, N], bin for bin as ``Recording.bin`` counts.

        The expected count of a bin is the exact integral of the true rate over it (zero
        outside the recording), so ``Recording.bin(bin_size, t0, t1)`` is a Poisson draw from
        this array. Bins: ``[t0 + i*bin_size, t0 + (i+1)*bin_size)``, the last one ending at ``t1``.
        """
        index = self.session_index(session)
        recording, rates = self.recordings[index], self.true_rates[index]
        if not bin_size > 0:
            raise ValueError(f"bin_size must be > 0, got {bin_size}")
        t0 = recording.start if t0 is None else float(t0)
        t1 = recording.end if t1 is None else float(t1)
        if t1 <= t0:
            raise ValueError(f"cannot compute expected counts on an empty span [{t0}, {t1})")
        n_bins = max(1, int(np.ceil((t1 - t0) / bin_size - 1e-9)))
        edges = np.append(t0 + bin_size * np.arange(n_bins), t1)
        return np.diff(self._cumulative_intensity(rates, edges), axis=0)

    def _cumulative_intensity(self, rates: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Integral of the rate up to each time, [len(times), N], up to a shared constant.

        Rates are piecewise constant on the grid; only the grid rows the times span are read,
        so the cost is O(span), not O(session). Differences of the result are exact integrals.
        """
        dt, n_rows = self.rate_bin_size, rates.shape[0]
        times = np.clip(times, 0.0, n_rows * dt)  # no rate outside the recording
        k = np.clip(np.floor(times / dt).astype(np.int64), 0, n_rows - 1)
        lo, hi = int(k.min()), int(k.max()) + 1
        local = rates[lo:hi].astype(np.float64)  # [rows, N]
        cumulative = np.vstack([np.zeros((1, local.shape[1])), np.cumsum(local * dt, axis=0)])
        return cumulative[k - lo] + local[k - lo] * (times - k * dt)[:, None]


# ---------------------------------------------------------------------- latent dynamics
@dataclass(frozen=True)
class _Dynamics:
    """The latent system shared by every session."""

    system: str
    dim: int
    omegas: np.ndarray  # [n_planes] rad/s (rotational)
    decays: np.ndarray  # [n_planes] s (rotational)
    condition_states: np.ndarray  # [n_conditions, D] noise-free initial states (normalised for lorenz)
    behavior_readout: np.ndarray  # [B, D]
    lorenz_mean: np.ndarray  # [3]
    lorenz_std: np.ndarray  # [3]
    noise_mask: np.ndarray  # [D] 1 where per-trial initial-state noise goes, else 0


def _build_dynamics(config: SyntheticConfig, rng: np.random.Generator) -> _Dynamics:
    if config.latent_system == "rotational":
        return _build_rotational(config, rng)
    return _build_lorenz(config, rng)


def _build_rotational(config: SyntheticConfig, rng: np.random.Generator) -> _Dynamics:
    dim, n_planes = config.latent_dim, config.latent_dim // 2
    # Velocity x / y each read one plane; the two share one slow rotation so that every reach is
    # a straight line in direction theta. Further behaviour dims read random mixtures.
    n_behavior_planes = min(config.behavior_dim, n_planes, 2)
    omegas = 2 * np.pi * rng.uniform(1.2, 3.0, n_planes)
    decays = rng.uniform(0.25, 0.45, n_planes)
    omegas[:n_behavior_planes], decays[:n_behavior_planes] = 2 * np.pi * 0.8, 0.5
    # Initial 'a' coordinate of plane p = row p of mix @ [cos t, sin t, cos 2t, sin 2t]; 'b' starts at 0.
    mix = rng.normal(size=(n_planes, 4))
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    mix[:n_behavior_planes] = np.eye(4)[:n_behavior_planes]
    theta = 2 * np.pi * np.arange(config.n_conditions) / config.n_conditions
    features = np.stack([np.cos(theta), np.sin(theta), np.cos(2 * theta), np.sin(2 * theta)], axis=1)
    states = np.zeros((config.n_conditions, dim))
    states[:, 0 : 2 * n_planes : 2] = features @ mix.T
    # Velocity reads the 'b' coordinates only: zero while preparing (output-null), potent once rotating.
    readout = np.zeros((config.behavior_dim, dim))
    b_dims = np.arange(1, 2 * n_planes, 2)
    readout[:, b_dims] = 0.1 * _SPEED_GAIN * rng.normal(size=(config.behavior_dim, n_planes))
    for j in range(n_behavior_planes):
        readout[j, b_dims] = 0.0
        readout[j, 2 * j + 1] = _SPEED_GAIN
    empty = np.zeros(0)
    # Trial noise stays in the output-null ('a', CIS) dims: the hand holds still while preparing.
    noise_mask = np.ones(dim)
    noise_mask[b_dims] = 0.0
    return _Dynamics("rotational", dim, omegas, decays, states, readout, empty, empty, noise_mask)


def _lorenz_step(z: np.ndarray, dt: float) -> np.ndarray:
    """One RK4 step of the Lorenz system for a batch of states [K, 3]."""
    sigma, rho, beta = _LORENZ_PARAMS

    def f(s: np.ndarray) -> np.ndarray:
        x, y, w = s[:, 0], s[:, 1], s[:, 2]
        out = np.empty_like(s)
        out[:, 0], out[:, 1], out[:, 2] = sigma * (y - x), x * (rho - w) - y, x * y - beta * w
        return out

    k1 = f(z)
    k2 = f(z + 0.5 * dt * k1)
    k3 = f(z + 0.5 * dt * k2)
    k4 = f(z + dt * k3)
    return z + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def _integrate_lorenz(z0: np.ndarray, n_steps: int, dt: float) -> np.ndarray:
    """Trajectories [K, n_steps, 3] starting at z0 [K, 3], in raw Lorenz coordinates."""
    path = np.empty((z0.shape[0], n_steps, 3))
    z = z0.astype(np.float64)
    for i in range(n_steps):
        path[:, i] = z
        z = _lorenz_step(z, dt)
    return path


def _build_lorenz(config: SyntheticConfig, rng: np.random.Generator) -> _Dynamics:
    dt = 0.01
    start = np.array([[1.0, 1.0, 20.0]]) + rng.normal(size=(1, 3))
    burn_in = _integrate_lorenz(start, 500, dt)[:, -1]  # land on the attractor
    run = _integrate_lorenz(burn_in, 2500, dt)[0]  # ~30 loops: enough for mean and std
    mean, std = run.mean(axis=0), run.std(axis=0)
    # Conditions: states far apart in time on the attractor, so trajectories differ.
    picks = np.linspace(0, len(run) - 1, config.n_conditions, endpoint=False).astype(int)
    picks = (picks + rng.integers(0, len(run) // max(1, config.n_conditions))) % len(run)
    states = (run[picks] - mean) / std
    readout = rng.normal(size=(config.behavior_dim, 3)) / np.sqrt(3)
    empty = np.zeros(0)
    return _Dynamics("lorenz", 3, empty, empty, states, readout, mean, std, np.ones(3))


def _raised_cosine(u: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp on u in [0, 1] with zero slope at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def _evaluate_latents(
    dyn: _Dynamics, config: SyntheticConfig, x0: np.ndarray, onset: np.ndarray, trial: np.ndarray, tau: np.ndarray
) -> np.ndarray:
    """Latents [M, D] at M times given each time's trial index and time since trial start.

    Args:
        x0: [K, D] per-trial initial states; onset: [K] move onset since trial start (s);
        trial: [M] trial index of each time; tau: [M] seconds since that trial's start.
    """
    tau_move = tau - onset[trial]
    prep = tau_move < 0
    x = np.empty((tau.size, dyn.dim))
    ramp = _raised_cosine(tau / np.maximum(onset[trial], 1e-12))
    x[prep] = ramp[prep, None] * x0[trial[prep]]
    moving = ~prep
    if dyn.system == "rotational":
        x[moving] = _rotate(dyn, x0[trial[moving]], tau_move[moving])
    else:
        x[moving] = _lorenz_latents(dyn, config, x0, trial[moving], tau_move[moving])
    # Fade to rest during the inter-trial gap so the next trial starts from 0 continuously.
    if config.inter_trial_interval > 0:
        fade = 1.0 - _raised_cosine((tau - config.trial_duration) / config.inter_trial_interval)
        x *= fade[:, None]
    return x


def _rotate(dyn: _Dynamics, x0: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Closed-form damped rotation of each plane of x0 [M, D] after tau [M] seconds."""
    x = np.zeros_like(x0)
    angle = tau[:, None] * dyn.omegas[None, :]  # [M, planes]
    scale = np.exp(-tau[:, None] / dyn.decays[None, :])
    a, b = x0[:, 0 : 2 * dyn.omegas.size : 2], x0[:, 1 : 2 * dyn.omegas.size : 2]
    x[:, 0 : 2 * dyn.omegas.size : 2] = scale * (np.cos(angle) * a - np.sin(angle) * b)
    x[:, 1 : 2 * dyn.omegas.size : 2] = scale * (np.sin(angle) * a + np.cos(angle) * b)
    if dyn.dim % 2:
        # Odd dim left over: a condition-independent bump after move onset (as seen in motor cortex).
        u = tau / _CIS_TIMESCALE
        x[:, -1] = x0[:, -1] * np.exp(-u) + u * np.exp(1 - u)
    return x


def _lorenz_latents(
    dyn: _Dynamics, config: SyntheticConfig, x0: np.ndarray, trial: np.ndarray, tau: np.ndarray
) -> np.ndarray:
    """Normalised Lorenz state tau seconds after move onset, integrating each trial from x0."""
    dt = config.rate_bin_size
    n_steps = int(np.ceil(config.trial_period / dt)) + 1
    z0 = x0 * dyn.lorenz_std + dyn.lorenz_mean
    paths = (_integrate_lorenz(z0, n_steps, dt * _LORENZ_SPEED) - dyn.lorenz_mean) / dyn.lorenz_std
    step = np.clip(np.round(tau / dt).astype(np.int64), 0, n_steps - 1)
    return paths[trial, step]


# ---------------------------------------------------------------------- neurons
@dataclass
class _UnitPool:
    """Units of one session before they become a Units table."""

    ids: list[str]
    regions: list[str]
    weights: np.ndarray  # [N, D]
    bias: np.ndarray  # [N]


def _region_latent_dims(config: SyntheticConfig) -> dict[str, np.ndarray]:
    """Region r reads a contiguous (wrapping) block of latent dims; blocks overlap and cover all dims."""
    dim, n_regions = config.latent_dim, len(config.regions)
    size = max(1, int(round(config.region_latent_fraction * dim)))
    return {
        name: np.sort((r * dim // n_regions + np.arange(size)) % dim) for r, name in enumerate(config.regions)
    }


def _reference_latents(dyn: _Dynamics, config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Latents over one trial period for every condition, [R * M, D], used to scale rates.

    One noise-free and three noisy repeats per condition, so the rate cap also holds,
    approximately, on single trials and not just on condition averages.
    """
    repeats = 4
    tau = (np.arange(int(np.ceil(config.trial_period / config.rate_bin_size))) + 0.5) * config.rate_bin_size
    x0 = np.tile(dyn.condition_states, (repeats, 1))
    noise = config.latent_noise * dyn.noise_mask * rng.normal(size=x0.shape)
    x0[config.n_conditions :] += noise[config.n_conditions :]
    trial = np.repeat(np.arange(x0.shape[0]), tau.size)
    onset = np.full(x0.shape[0], config.move_onset_time)
    return _evaluate_latents(dyn, config, x0, onset, trial, np.tile(tau, x0.shape[0]))


def _new_units(
    config: SyntheticConfig,
    rng: np.random.Generator,
    regions: list[str],
    region_dims: dict[str, np.ndarray],
    reference: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Readout (weights [N, D], bias [N]) for new units.

    Each unit reads a random direction within its region's latent dims. Over the reference
    trajectories its log-rate has std ``modulation`` (x0.5-1.5 per unit) and its
    mean rate is drawn log-uniformly from ``rate_range`` (near-silent units: below 0.5 Hz).
    """
    n = len(regions)
    directions = np.zeros((n, config.latent_dim))
    for i, region in enumerate(regions):
        dims = region_dims[region]
        direction = rng.normal(size=dims.size)
        directions[i, dims] = direction / max(np.linalg.norm(direction), 1e-12)
    silent = rng.random(n) < config.silent_fraction
    lo, hi = np.where(silent[:, None], _SILENT_RATE_RANGE, config.rate_range).T
    mean_rate = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    projection = np.ascontiguousarray(directions @ reference.T)  # [N, M]: one row per unit
    gain = config.modulation * rng.uniform(0.5, 1.5, n) / np.maximum(projection.std(axis=1), 1e-9)
    gain = _cap_gain(projection, gain, mean_rate, config.max_rate)
    weights = directions * gain[:, None]
    # Bias so the mean (not the median) rate over the reference equals mean_rate.
    bias = np.log(mean_rate) - _log_mean_exp(projection * gain[:, None])
    return weights, bias


def _log_mean_exp(values: np.ndarray) -> np.ndarray:
    """log(mean(exp(values), axis=1)) without overflow."""
    top = values.max(axis=1)
    return top + np.log(np.mean(np.exp(values - top[:, None]), axis=1))


def _cap_gain(projection: np.ndarray, gain: np.ndarray, mean_rate: np.ndarray, max_rate: float) -> np.ndarray:
    """Shrink each unit's gain until its peak reference rate is at most ``max_rate``.

    With the bias set to hold the mean rate, the peak log-rate is
    ``log(mean_rate) + g * max(p) - log_mean_exp(g * p)``, increasing in ``g``: bisect.

    Args:
        projection: [N, M] each unit's readout direction applied to the reference latents.
    """
    p_max, limit = projection.max(axis=1), np.log(max_rate / mean_rate)

    def excess(g: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return g * p_max[rows] - _log_mean_exp(projection[rows] * g[:, None]) - limit[rows]

    gain = gain.copy()
    rows = np.flatnonzero(excess(gain, np.arange(gain.size)) > 0)
    lo, hi = np.zeros(rows.size), gain[rows]
    for _ in range(30):  # bisection to ~1e-9 of the gain: far below any visible effect
        mid = 0.5 * (lo + hi)
        too_high = excess(mid, rows) > 0
        hi, lo = np.where(too_high, mid, hi), np.where(too_high, lo, mid)
    gain[rows] = lo
    return gain


def _session_units(
    config: SyntheticConfig,
    rng: np.random.Generator,
    previous: _UnitPool | None,
    next_id: int,
    region_dims: dict[str, np.ndarray],
    reference: np.ndarray,
) -> tuple[_UnitPool, int]:
    """Units of one session: some carried over from ``previous`` (drifted), the rest new."""
    n_units = int(rng.integers(config.units_per_session[0], config.units_per_session[1] + 1))
    lo, hi = config.regions_per_session
    chosen = rng.choice(len(config.regions), int(rng.integers(lo, hi + 1)), replace=False)
    session_regions = [config.regions[i] for i in np.sort(chosen)]
    ids, regions, weights, bias = [], [], np.zeros((0, config.latent_dim)), np.zeros(0)
    if previous is not None:
        eligible = np.flatnonzero(np.isin(previous.regions, session_regions))
        n_keep = min(int(round(config.overlap_fraction * n_units)), eligible.size)
        keep = np.sort(rng.choice(eligible, n_keep, replace=False))
        ids = [previous.ids[i] for i in keep]
        regions = [previous.regions[i] for i in keep]
        weights, bias = _drift(config, rng, previous.weights[keep], previous.bias[keep])
    n_new = n_units - len(ids)
    new_regions = list(rng.permutation(np.resize(np.array(session_regions), n_new)))
    new_weights, new_bias = _new_units(config, rng, new_regions, region_dims, reference)
    ids += [f"u{next_id + i:03d}" for i in range(n_new)]
    order = rng.permutation(n_units)  # carried-over units are not all at the front
    pool = _UnitPool(
        ids=[ids[i] for i in order],
        regions=[(regions + new_regions)[i] for i in order],
        weights=np.vstack([weights, new_weights])[order],
        bias=np.concatenate([bias, new_bias])[order],
    )
    return pool, next_id + n_new


def _drift(
    config: SyntheticConfig, rng: np.random.Generator, weights: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Perturb carried-over readouts by ``drift`` (relative), keeping each unit's latent support."""
    support = weights != 0
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    size = np.maximum(support.sum(axis=1, keepdims=True), 1)
    noise = rng.normal(size=weights.shape) * support * norms / np.sqrt(size)
    return weights + config.drift * noise, bias + config.drift * rng.normal(size=bias.shape)


# ---------------------------------------------------------------------- sessions
def _trial_table(config: SyntheticConfig, rng: np.random.Generator) -> tuple[Intervals, np.ndarray]:
    """Trials (condition, split, move_onset_time) and per-trial move onsets since trial start."""
    n = config.n_trials
    start = np.arange(n) * config.trial_period
    condition = rng.permutation(np.resize(np.arange(config.n_conditions), n)).astype(np.int64)
    onset = config.move_onset_time + rng.uniform(-1, 1, n) * config.move_onset_jitter
    counts = np.floor(np.asarray(config.split_fractions) * n).astype(int)
    counts[0] += n - counts.sum()  # rounding leftovers go to train
    split = rng.permutation(np.repeat(np.array(["train", "val", "test"]), counts))
    columns = {"condition": condition, "split": split, "move_onset_time": start + onset}
    return Intervals(start, start + config.trial_duration, columns), onset


def _poisson_spikes(rates: np.ndarray, dt: float, rng: np.random.Generator) -> SpikeTrains:
    """Exact Poisson process for rates [T, N] piecewise constant on bins of ``dt`` seconds."""
    counts = rng.poisson(rates.astype(np.float64) * dt)
    rows, units = np.nonzero(counts)
    n = counts[rows, units]
    rows, units = np.repeat(rows, n), np.repeat(units, n)
    times = (rows + rng.random(rows.size)) * dt  # uniform within its bin
    order = np.argsort(times, kind="stable")
    return SpikeTrains(times=times[order], units=units[order])


def _session(
    index: int, config: SyntheticConfig, dyn: _Dynamics, pool: _UnitPool, rng: np.random.Generator
) -> tuple[Recording, np.ndarray, np.ndarray, np.ndarray]:
    """One recording plus its true rates, latents and noise-free behaviour."""
    dt = config.rate_bin_size
    trials, onset = _trial_table(config, rng)
    x0 = dyn.condition_states[trials.columns["condition"]]
    x0 = x0 + config.latent_noise * dyn.noise_mask * rng.normal(size=x0.shape)
    n_bins = int(np.ceil(config.n_trials * config.trial_period / dt - 1e-9))
    centres = (np.arange(n_bins) + 0.5) * dt
    trial = np.minimum((centres // config.trial_period).astype(np.int64), config.n_trials - 1)
    latents = _evaluate_latents(dyn, config, x0, onset, trial, centres - trial * config.trial_period)
    rates = np.exp(latents @ pool.weights.T + pool.bias).astype(np.float32)  # [T, N] Hz
    behavior = latents @ dyn.behavior_readout.T  # [T, B]
    step = int(round(config.behavior_bin_size / dt))
    noisy = behavior[::step] + config.behavior_noise * rng.normal(size=behavior[::step].shape)
    columns = ("x", "y") if config.behavior_dim == 2 else tuple(f"v{j}" for j in range(config.behavior_dim))
    hand_vel = TimeSeries(np.arange(0, n_bins, step) * dt, noisy, columns)
    heldout = np.zeros(len(pool.ids), bool)
    n_heldout = min(int(round(config.heldout_fraction * len(pool.ids))), len(pool.ids) - 1)
    heldout[rng.choice(len(pool.ids), n_heldout, replace=False)] = True
    units = Units(ids=np.array(pool.ids), region=np.array(pool.regions), heldout=heldout)
    recording = Recording(
        spikes=_poisson_spikes(rates, dt, rng),
        units=units,
        session=f"synth-{index}",
        subject="synth-subject",
        behavior={"hand_vel": hand_vel},
        trials=trials,
        start=0.0,
        end=n_bins * dt,
        source=f"synthetic(seed={config.seed})",
        metadata={"latent_system": config.latent_system, "rate_bin_size": dt, "hand_vel_units": "a.u."},
    )
    return recording, rates, latents.astype(np.float32), behavior.astype(np.float32)


def generate(config: SyntheticConfig | None = None) -> SyntheticDataset:
    """Generate recordings and their ground truth; deterministic given ``config.seed``.

    Args:
        config: the generating config (None: the defaults, 4 sessions of 100 trials).

    Returns:
        A :class:`SyntheticDataset`.
    """
    config = SyntheticConfig() if config is None else config
    shared_seed, *session_seeds = np.random.SeedSequence(config.seed).spawn(config.n_sessions + 1)
    shared = np.random.default_rng(shared_seed)
    dyn = _build_dynamics(config, shared)
    region_dims = _region_latent_dims(config)
    reference = _reference_latents(dyn, config, shared)
    out: dict[str, list] = {k: [] for k in ("recordings", "rates", "latents", "behavior", "weights", "bias")}
    pool, next_id = None, 0
    for index, seed in enumerate(session_seeds):
        rng = np.random.default_rng(seed)
        pool, next_id = _session_units(config, rng, pool, next_id, region_dims, reference)
        recording, rates, latents, behavior = _session(index, config, dyn, pool, rng)
        for key, value in zip(out, (recording, rates, latents, behavior, pool.weights, pool.bias)):
            out[key].append(value)
    return SyntheticDataset(
        config=config,
        recordings=out["recordings"],
        true_rates=out["rates"],
        latents=out["latents"],
        true_behavior=out["behavior"],
        readout_weights=out["weights"],
        readout_bias=out["bias"],
        behavior_readout=dyn.behavior_readout,
        region_latent_dims=region_dims,
        rate_bin_size=config.rate_bin_size,
    )


def make_recording(
    *,
    duration: float = 60.0,
    n_units: int = 100,
    rate_hz: float | Sequence[float] | np.ndarray = 10.0,
    seed: int = 0,
    session: str = "poisson",
    subject: str = "",
) -> Recording:
    """Homogeneous Poisson spikes, fast enough for hour-long benchmark recordings.

    The superposition of independent Poisson units is one Poisson process with the summed
    rate whose spikes pick their unit with probability proportional to its rate, so spike
    times come out sorted (cumulative exponential gaps) with no sort. 1 h x 200 units x 15 Hz
    (~10.8 M spikes) builds in about a second.

    Args:
        duration: seconds; the recording spans ``[0, duration)``.
        n_units: number of units (ids ``u000``...).
        rate_hz: one rate for all units, or one per unit (Hz, >= 0).
        seed: random seed.
        session, subject: ids stored on the recording.
    """
    if not (duration > 0 and n_units >= 1):
        raise ValueError(f"need duration > 0 and n_units >= 1, got duration={duration}, n_units={n_units}")
    rates = np.broadcast_to(np.asarray(rate_hz, np.float64), (n_units,))
    if np.any(rates < 0) or not np.all(np.isfinite(rates)):
        raise ValueError("rate_hz must be finite and >= 0 (one value, or one per unit)")
    rng = np.random.default_rng(seed)
    total = float(rates.sum())
    times = np.zeros(0)
    if total > 0:
        expected = total * duration
        gaps = rng.exponential(1.0 / total, int(expected + 6 * np.sqrt(expected) + 16))
        times = np.cumsum(gaps)
        while times[-1] < duration:  # practically never: the draw above covers +6 sd
            times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / total, gaps.size))])
        times = times[: np.searchsorted(times, duration, side="left")]
    if np.all(rates == rates[0]):
        units = rng.integers(0, n_units, times.size)
    else:
        units = rng.choice(n_units, size=times.size, p=rates / max(total, 1e-300))
    width = max(3, len(str(n_units - 1)))
    return Recording(
        spikes=SpikeTrains(times=times, units=units),
        units=Units(ids=np.array([f"u{i:0{width}d}" for i in range(n_units)])),
        session=session,
        subject=subject,
        start=0.0,
        end=float(duration),
        source=f"make_recording(seed={seed})",
    )
