"""Poisson regression with a log link and an L2 penalty (sklearn's ``PoissonRegressor``), all outputs at once."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from spikefm.eval.metrics import ZERO_RATE

__all__ = ["PoissonGLM", "MAX_RATE"]

MAX_RATE = 1e20  # NLB clips GLM rates to [1e-9, 1e20]

class PoissonGLM:
    """Poisson regression with a log link, one output per column, fitted jointly by L-BFGS.

    Minimises, as sklearn's ``PoissonRegressor(alpha)`` does for each output,
    ``mean_s(exp(eta) - y eta) + alpha / 2 * ||w||^2`` with ``eta = x w + b`` and the intercept ``b`` unpenalised.
    The outputs are independent, so fitting them in one problem gives each its own optimum. Inputs are centred
    internally (the optimum is unchanged; L-BFGS converges faster). Where ``eta > 50`` the loss continues ``exp``
    linearly so a bad step overflows nothing; the optimum never lies there for count data.

    Args:
        alpha: L2 penalty on the weights (>= 0).
        max_iter: L-BFGS iteration cap.
        tol: L-BFGS projected-gradient tolerance.

    Attributes (after :meth:`fit`):
        coef_: ``[F, D]`` weights. intercept_: ``[D]``. n_iter_: iterations used. converged_: bool.
    """

    _ETA_MAX = 50.0

    def __init__(self, *, alpha: float = 0.0, max_iter: int = 1000, tol: float = 1e-7) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.n_iter_ = 0
        self.converged_ = False

    def _mean_and_grad(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """exp(eta) continued linearly above _ETA_MAX: (value, derivative)."""
        cap = np.minimum(eta, self._ETA_MAX)
        mu = np.exp(cap)
        over = eta > self._ETA_MAX
        value = np.where(over, mu * (1.0 + eta - cap), mu)
        return value, mu

    def fit(self, x: np.ndarray, y: np.ndarray) -> PoissonGLM:
        """Fits the GLM.

        Args:
            x: inputs, ``[S, F]``.
            y: non-negative counts, ``[S, D]`` (or ``[S]`` for one output).

        Returns:
            self.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x must be [S, F] and y [S, D] with the same S, got {x.shape} and {y.shape}")
        if x.shape[0] == 0:
            raise ValueError("cannot fit a GLM on zero samples")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("GLM inputs and counts must be finite")
        if np.any(y < 0):
            raise ValueError("Poisson GLM counts must be non-negative")
        n, f = x.shape
        d = y.shape[1]
        x_mean = x.mean(axis=0)
        xc = x - x_mean
        y_mean = y.mean(axis=0)
        b0 = np.log(np.maximum(y_mean, ZERO_RATE))  # the optimum without inputs; a silent neuron starts near -inf

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: f * d].reshape(f, d)
            b = theta[f * d :]
            eta = xc @ w + b  # [S, D]
            value, mu = self._mean_and_grad(eta)
            loss = (value.sum() - (y * eta).sum()) / n + 0.5 * self.alpha * np.sum(w * w)
            resid = (mu - y) / n  # [S, D]
            grad_w = xc.T @ resid + self.alpha * w
            grad_b = resid.sum(axis=0)
            return float(loss), np.concatenate([grad_w.ravel(), grad_b])

        theta0 = np.concatenate([np.zeros(f * d), b0])
        result = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 64 * np.finfo(float).eps},
        )
        w = result.x[: f * d].reshape(f, d)
        self.coef_ = w
        self.intercept_ = result.x[f * d :] - x_mean @ w
        self.n_iter_ = int(result.nit)
        self.converged_ = bool(result.success)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Expected counts ``exp(x w + b)``, ``[S, D]``, clipped to ``[1e-9, 1e20]`` as NLB clips them."""
        if self.coef_ is None or self.intercept_ is None:
            raise RuntimeError("PoissonGLM.predict called before fit")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"x must be [S, {self.coef_.shape[0]}], got {x.shape}")
        eta = np.clip(x @ self.coef_ + self.intercept_, np.log(ZERO_RATE), np.log(MAX_RATE))
        return np.exp(eta)


