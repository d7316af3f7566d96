"""Bought together: association lift between items from baskets (an invoice, an order)."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from recommend.components.base import Component, prune_top
from recommend.protocol import TrainSet


def lift_matrix(
    baskets: sp.csr_matrix, *, min_count: int, shrink: float, neighbors: int
) -> sp.csr_matrix:
    """``log lift(i, j)`` with ``lift = N c_ij / (c_i c_j)`` over N baskets, damped by
    ``c_ij / (c_ij + shrink)`` (a pair seen once is weak evidence); only pairs with lift above 1
    and seen at least ``min_count`` times; each row keeps its ``neighbors`` strongest."""
    b = sp.csr_matrix(baskets, dtype=np.float32)
    n = b.shape[0]
    co = (b.T @ b).tocsr()
    c = co.diagonal().astype(np.float64)
    co.setdiag(0)
    co.eliminate_zeros()
    coo = co.tocoo()
    keep = coo.data >= min_count
    r, col, cij = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.float64)
    lift = n * cij / (c[r] * c[col])
    val = np.log(lift) * cij / (cij + shrink)
    pos = val > 0  # lift above 1 only: a pair no likelier than chance says nothing
    m = sp.csr_matrix((val[pos].astype(np.float32), (r[pos], col[pos])), shape=co.shape)
    return prune_top(m, neighbors)


class BoughtTogether(Component):
    """Score of item j for a user: the sum of lift(i, j) over the user's items i; for a cart or a
    product page, over those items (:meth:`with_items`)."""

    name = "together"

    def __init__(self, min_count: int = 1, shrink: float = 2.0, neighbors: int = 100) -> None:
        super().__init__(min_count=min_count, shrink=shrink, neighbors=neighbors)

    def tune_grid(self) -> dict[str, list[float]]:
        return {"shrink": [0.5, 2.0, 10.0]}

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        self.lift = lift_matrix(
            train.baskets,
            min_count=int(self.params["min_count"]),
            shrink=float(self.params["shrink"]),
            neighbors=int(self.params["neighbors"]),
        )
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        x = self._fitted().binary()[users]
        return np.asarray((x @ self.lift).toarray(), dtype=np.float32)

    def with_items(self, items: list[int]) -> np.ndarray:
        """Scores for a cart or a product page: the summed lift rows of ``items``."""
        if not items:
            return np.zeros(self.lift.shape[0], np.float32)
        return np.asarray(self.lift[items].sum(axis=0), dtype=np.float32).ravel()
