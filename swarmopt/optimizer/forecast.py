"""Short-horizon load forecasts for predictive pre-scaling.

Additive Holt / Holt-Winters exponential smoothing over a 1-D series of
per-window arrival rates (tasks/s), implemented directly (no statsmodels) so
the optimizer stays dependency-light and deterministic.

Source: R. J. Hyndman & G. Athanasopoulos, *Forecasting: Principles and
Practice*, 3rd ed., ch. 8 (sec. 8.2 "Methods with trend", Holt's linear
trend; sec. 8.3 "Methods with seasonality", Holt-Winters additive method),
https://otexts.com/fpp3/.

Component form with smoothing parameters ``alpha`` (level), ``beta``
(FPP's ``beta*``, trend) and ``gamma`` (season) and season length ``m``::

    l_t = alpha (y_t - s_{t-m}) + (1 - alpha)(l_{t-1} + b_{t-1})
    b_t = beta (l_t - l_{t-1}) + (1 - beta) b_{t-1}
    s_t = gamma (y_t - l_{t-1} - b_{t-1}) + (1 - gamma) s_{t-m}
    yhat_{T+h|T} = l_T + h b_T + s_{T+h-m(k+1)},   k = floor((h - 1) / m)

Without a season the ``s`` terms are dropped (Holt's linear trend).

FPP estimates the initial states by optimisation; here they are set with the
usual closed-form heuristic instead, so the fit is a single O(n) pass:

* no season: ``l_0 = y_0``, ``b_0 = y_1 - y_0``; updates run from ``t = 1``;
* season ``m``: with ``M1``, ``M2`` the means of the first two seasons,
  ``b = (M2 - M1) / m``, the level at ``t = m - 1`` is ``M1 + b (m - 1) / 2``
  (``M1`` estimates the level at the centre of season 1), and
  ``s_i = y_i - (M1 + b (i - (m - 1) / 2))`` for ``i < m`` (detrended first
  season); updates run from ``t = m``.

Both initialisations reproduce an exact linear ramp with zero error, which is
what a steadily growing load should extrapolate to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["HoltWinters", "fit_forecast", "forecast_peak"]


def _check_unit(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True)
class HoltWinters:
    """Smoothing parameters for the additive Holt(-Winters) method.

    Attributes:
        alpha: level smoothing in [0, 1].
        beta: trend smoothing (FPP's ``beta*``) in [0, 1].
        gamma: seasonal smoothing in [0, 1]; ignored without a season.
        season_length: ``m`` in windows (int >= 2), or ``None`` for no season.

    Raises:
        ValueError: if a smoothing parameter is outside [0, 1] or
            ``season_length`` is neither ``None`` nor an int >= 2.
    """

    alpha: float = 0.5
    beta: float = 0.3
    gamma: float = 0.2
    season_length: int | None = None

    def __post_init__(self) -> None:
        _check_unit("alpha", self.alpha)
        _check_unit("beta", self.beta)
        _check_unit("gamma", self.gamma)
        m = self.season_length
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2):
            raise ValueError(f"season_length must be None or an int >= 2, got {m!r}")


def _validate(series: np.ndarray, horizon: int, model: HoltWinters) -> np.ndarray:
    if not isinstance(model, HoltWinters):
        raise ValueError(f"model must be a HoltWinters instance, got {type(model).__name__}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    y = np.asarray(series, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"series must be 1-D, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("series must contain only finite values")
    m = model.season_length
    need = 2 if m is None else 2 * m
    if y.size < need:
        what = "2" if m is None else f"2 * season_length = {need}"
        raise ValueError(f"series must have at least {what} points, got {y.size}")
    return y


def fit_forecast(series: np.ndarray, horizon: int, model: HoltWinters = HoltWinters()) -> np.ndarray:
    """Fit additive Holt(-Winters) smoothing and forecast ``horizon`` steps.

    Args:
        series: shape ``(n,)``, finite observations (e.g. arrival rate in
            tasks/s per window), oldest first.  ``n >= 2`` without a season,
            ``n >= 2 * season_length`` with one (two seasons are needed to
            initialise the trend and seasonal indices).
        horizon: number of future windows ``H >= 1``.
        model: smoothing parameters and optional season length.

    Returns:
        Array of shape ``(H,)``: ``out[h - 1] = yhat_{n-1+h | n-1}`` in the
        units of ``series``.  Not clipped; may be negative for a falling trend.

    Raises:
        ValueError: if ``series`` is not 1-D, has non-finite values or is too
            short, if ``horizon`` is not an int >= 1, or if ``model`` is not a
            :class:`HoltWinters`.
    """
    y = _validate(series, horizon, model)
    a, b_, g, m = model.alpha, model.beta, model.gamma, model.season_length
    h = np.arange(1, int(horizon) + 1, dtype=float)

    if m is None:
        level, trend = y[0], y[1] - y[0]
        for t in range(1, y.size):
            prev_level = level
            level = a * y[t] + (1 - a) * (level + trend)
            trend = b_ * (level - prev_level) + (1 - b_) * trend
        return level + h * trend

    m = int(m)
    m1, m2 = y[:m].mean(), y[m : 2 * m].mean()
    trend = (m2 - m1) / m
    level = m1 + trend * (m - 1) / 2.0
    # Ring buffer of the last m seasonal states; season[t % m] holds s_{t-m}
    # just before s_t overwrites it.
    season = y[:m] - (m1 + trend * (np.arange(m) - (m - 1) / 2.0))
    for t in range(m, y.size):
        i = t % m
        prev_level, prev_trend = level, trend
        level = a * (y[t] - season[i]) + (1 - a) * (prev_level + prev_trend)
        trend = b_ * (level - prev_level) + (1 - b_) * prev_trend
        season[i] = g * (y[t] - prev_level - prev_trend) + (1 - g) * season[i]
    last = y.size - 1
    # s_{T+h-m(k+1)} is the most recent stored state at the same phase as T+h.
    idx = (last + np.arange(1, int(horizon) + 1)) % m
    return level + h * trend + season[idx]


def forecast_peak(series: np.ndarray, horizon: int, model: HoltWinters = HoltWinters()) -> float:
    """Largest forecast over the next ``horizon`` windows, floored at 0.

    Arrival rates cannot be negative, so a steeply falling trend yields 0.0
    rather than a negative capacity target.

    Args / Raises: as :func:`fit_forecast`.

    Returns:
        ``max(0, max_h yhat_{n-1+h|n-1})`` in the units of ``series``.
    """
    return max(0.0, float(np.max(fit_forecast(series, horizon, model))))
