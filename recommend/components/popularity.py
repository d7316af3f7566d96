"""Non-personal components: popularity and time-decayed trending (per category too)."""

from __future__ import annotations

from typing import Self

import numpy as np

from recommend.components.base import Component
from recommend.protocol import TrainSet

DAY = 86400.0


class Popularity(Component):
    """Distinct training users per item (ties broken by item id at ranking)."""

    name = "popularity"
    personal = False

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        self.counts = np.asarray(train.binary().sum(axis=0), dtype=np.float32).ravel()
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts))).copy()


class Trending(Component):
    """Event weights decayed by age: each event counts ``weight * 0.5 ** (age / half_life_days)``,
    age measured from the newest training event. ``in_category`` ranks within one category."""

    name = "trending"
    personal = False

    def __init__(self, half_life_days: float = 14.0) -> None:
        super().__init__(half_life_days=half_life_days)

    def tune_grid(self) -> dict[str, list[float]]:
        return {"half_life_days": [3.0, 7.0, 14.0, 30.0, 90.0]}

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        age = (train.now - train.ev_time) / DAY
        w = 0.5 ** (age / float(self.params["half_life_days"]))
        self.heat = np.bincount(train.ev_item, weights=w, minlength=train.n_items).astype(
            np.float32
        )
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.heat, (len(users), len(self.heat))).copy()

    def in_category(self, category: str) -> np.ndarray:
        """Trending scores with items outside ``category`` at -inf (no categories: all -inf)."""
        cats = self._fitted().item_category
        out = np.full(len(self.heat), -np.inf, dtype=np.float32)
        if cats:
            mask = np.array([c == category for c in cats])
            out[mask] = self.heat[mask]
        return out
