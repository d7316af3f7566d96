"""Predictive CLV: BG/NBD for the number of future orders and Gamma-Gamma for their value, fitted
by pymc-marketing (maximum a posteriori) on every buyer's order history. Times are in days.

Why pymc-marketing (measured, see docs/profiles.md): it is the maintained implementation; lifetimes
(unmaintained since 2020) returns NaN for one-time buyers on current numpy/scipy, and btyd (its fork)
does not import on Python 3.11. The fit is CPU-bound, so callers run it in a worker thread.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("precis.profiles")

# Below this many buyers (or repeat buyers) the fit says little; predictions are left empty.
MIN_BUYERS = 20
MIN_REPEAT_BUYERS = 5


@dataclass(slots=True)
class Buyer:
    """One customer's history in BG/NBD terms: ``frequency`` repeat orders, ``recency`` days from the
    first to the last order, ``age`` days from the first order to now, ``average_value`` per order."""

    customer_id: int
    frequency: int
    recency: float
    age: float
    average_value: float


@dataclass(slots=True)
class Prediction:
    expected_purchases: float
    probability_alive: float
    expected_value: float  # expected_purchases x expected spend per order (not discounted)


@dataclass(slots=True)
class ClvFit:
    model: str
    horizon_days: int
    buyers: int
    repeat_buyers: int
    params: dict[str, float] = field(default_factory=dict)
    predictions: dict[int, Prediction] = field(default_factory=dict)
    skipped: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "horizon_days": self.horizon_days,
            "buyers": self.buyers,
            "repeat_buyers": self.repeat_buyers,
            "params": self.params,
            "skipped": self.skipped,
        }


def _params(model: Any) -> dict[str, float]:
    summary = model.fit_summary()
    return {str(k): round(float(v), 6) for k, v in summary.items()}


def fit_and_predict(buyers: list[Buyer], *, horizon_days: int) -> ClvFit:
    """Fit BG/NBD and Gamma-Gamma on ``buyers`` and predict each one's next ``horizon_days``."""
    repeat = [b for b in buyers if b.frequency > 0 and b.average_value > 0]
    result = ClvFit(
        model="bgnbd+gamma_gamma (pymc-marketing, MAP)",
        horizon_days=horizon_days,
        buyers=len(buyers),
        repeat_buyers=len(repeat),
    )
    if len(buyers) < MIN_BUYERS or len(repeat) < MIN_REPEAT_BUYERS:
        result.skipped = (
            f"needs {MIN_BUYERS} buyers and {MIN_REPEAT_BUYERS} repeat buyers; "
            f"has {len(buyers)} and {len(repeat)}"
        )
        return result

    with warnings.catch_warnings():
        # pymc and arviz warn on import and about sampler settings that MAP fitting does not use.
        warnings.simplefilter("ignore")
        import pandas as pd
        from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    # A first order placed "now" has age 0, which BG/NBD cannot take; a tenth of a day is harmless.
    data = pd.DataFrame(
        {
            "customer_id": [b.customer_id for b in buyers],
            "frequency": [b.frequency for b in buyers],
            "recency": [b.recency for b in buyers],
            "T": [max(b.age, b.recency, 0.1) for b in buyers],
            "monetary_value": [b.average_value for b in buyers],
        }
    )
    spend_data = data[(data.frequency > 0) & (data.monetary_value > 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = BetaGeoModel(data=data[["customer_id", "frequency", "recency", "T"]])
        bg.fit(fit_method="map", progressbar=False)
        purchases = bg.expected_purchases(future_t=horizon_days).values.ravel()
        alive = bg.expected_probability_alive().values.ravel()
        gg = GammaGammaModel(data=spend_data[["customer_id", "frequency", "monetary_value"]])
        gg.fit(fit_method="map", progressbar=False)
        spend = gg.expected_customer_spend(
            data=data[["customer_id", "frequency", "monetary_value"]]
        ).values.ravel()
    result.params = {**_params(bg), **{f"gg_{k}": v for k, v in _params(gg).items()}}
    for b, n, p, s in zip(buyers, purchases, alive, spend, strict=True):
        n, p, s = float(n), float(p), float(s)
        if not (math.isfinite(n) and math.isfinite(p) and math.isfinite(s)):
            continue
        result.predictions[b.customer_id] = Prediction(n, p, n * s)
    log.info("clv fit %s", result.summary())
    return result
