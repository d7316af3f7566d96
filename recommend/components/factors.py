"""Implicit-feedback matrix factorisation from the ``implicit`` library: ALS and BPR. Scores for
all items are one matrix product ``user_factors @ item_factors.T``."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommend.components.base import Component
from recommend.protocol import TrainSet


def confidence(train: TrainSet, alpha: float) -> sp.csr_matrix:
    """``alpha * log1p(weight)``: repeated purchases count, with diminishing returns."""
    m = train.matrix.copy().astype(np.float32)
    m.data = alpha * np.log1p(m.data)
    return m


class _Implicit(Component):
    model: Any

    def _make(self) -> Any: ...

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        # implicit wants single-threaded BLAS (its own threads do the work); it checks when the
        # model is made.
        with threadpool_limits(1, "blas"):
            self.model = self._make()
            self.model.fit(
                confidence(train, float(self.params.get("alpha", 1.0))), show_progress=False
            )
        self.user_factors = np.asarray(self.model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(self.model.item_factors, dtype=np.float32)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        self._fitted()
        return self.user_factors[users] @ self.item_factors.T

    def tune_grid(self) -> dict[str, list[float]]:
        return {"factors": [16, 32, 64, 128]}


class ALS(_Implicit):
    """Weighted ALS (Hu, Koren, Volinsky 2008), ``implicit.cpu.als``."""

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            seed=seed,
        )

    def _make(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        return AlternatingLeastSquares(
            factors=int(p["factors"]),
            regularization=float(p["regularization"]),
            alpha=1.0,
            iterations=int(p["iterations"]),
            random_state=int(p["seed"]),
            num_threads=1,
        )


class BPR(_Implicit):
    """Bayesian personalised ranking (Rendle et al. 2009), ``implicit.cpu.bpr``."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(
            factors=factors,
            learning_rate=learning_rate,
            regularization=regularization,
            iterations=iterations,
            seed=seed,
        )

    def _make(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        return BayesianPersonalizedRanking(
            factors=int(p["factors"]),
            learning_rate=float(p["learning_rate"]),
            regularization=float(p["regularization"]),
            iterations=int(p["iterations"]),
            random_state=int(p["seed"]),
            num_threads=1,
        )
