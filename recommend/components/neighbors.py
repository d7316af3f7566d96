"""Item-item components over co-occurrence: item-kNN with shrinkage, EASE, and session signals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommend.components.base import Component, prune_top
from recommend.protocol import TrainSet


def cooccurrence_similarity(binary: sp.csr_matrix, shrink: float, neighbors: int) -> sp.csr_matrix:
    """Cosine over the items' user sets with shrinkage, ``c_ij / (sqrt(n_i n_j) + shrink)``, each
    row keeping its ``neighbors`` largest entries; the diagonal is zero."""
    x = sp.csr_matrix(binary, dtype=np.float32)
    co = (x.T @ x).tocsr()
    n = co.diagonal().astype(np.float32)
    co.setdiag(0)
    co.eliminate_zeros()
    coo = co.tocoo()
    norm = np.sqrt(n[coo.row] * n[coo.col]) + shrink
    sim = sp.csr_matrix((coo.data / norm, (coo.row, coo.col)), shape=co.shape, dtype=np.float32)
    return prune_top(sim, neighbors)


class ItemKNN(Component):
    """Score of item j for a user: the sum over the user's items i of sim(i, j)."""

    name = "itemknn"

    def __init__(self, neighbors: int = 100, shrink: float = 10.0) -> None:
        super().__init__(neighbors=neighbors, shrink=shrink)

    def tune_grid(self) -> dict[str, list[float]]:
        return {"shrink": [0.0, 10.0, 50.0, 200.0]}

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        self.sim = cooccurrence_similarity(
            train.binary(), float(self.params["shrink"]), int(self.params["neighbors"])
        )
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        x = self._fitted().binary()[users]
        return np.asarray((x @ self.sim).toarray(), dtype=np.float32)


class EASE(Component):
    """EASE (Steck 2019) in closed form: ``P = (X'X + lambda I)^-1``, ``B = -P / diag(P)``,
    ``diag(B) = 0``; scores ``X_u B``. Dense ``n_items^2``: fine to a few ten thousand items."""

    name = "ease"

    def __init__(self, l2: float = 200.0) -> None:
        super().__init__(l2=l2)

    def tune_grid(self) -> dict[str, list[float]]:
        return {"l2": [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 3000.0]}

    def fit(self, train: TrainSet) -> Self:
        import scipy.linalg as la

        self.train = train
        x = train.binary()
        g = (x.T @ x).toarray().astype(np.float64)
        g[np.diag_indices_from(g)] += float(self.params["l2"])
        # One BLAS thread: multi-threaded OpenBLAS crashed (SIGSEGV) inverting the 20,000 x 20,000
        # Gram matrix on this 2-core machine (docs/benchmarks.md, training at scale); ALS and BPR
        # are pinned the same way.
        with threadpool_limits(1, "blas"):
            p = la.inv(g, overwrite_a=True, check_finite=False)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.b = b.astype(np.float32)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        x = self._fitted().binary()[users]
        return np.asarray(x @ self.b, dtype=np.float32)


def session_scores(
    similarity: sp.csr_matrix, recent: Sequence[int] | np.ndarray, *, decay: float = 0.7
) -> np.ndarray:
    """Request-time session signal: the similarity rows of the shopper's recent items (oldest
    first), the newest weighted 1, the one before ``decay``, then ``decay**2``... A product viewed a
    moment ago changes the answer with no retraining. Unknown items (negative) are skipped."""
    n = similarity.shape[0]
    items = [int(i) for i in recent if 0 <= int(i) < n]
    if not items:
        return np.zeros(n, dtype=np.float32)
    w = decay ** np.arange(len(items) - 1, -1, -1, dtype=np.float64)
    v = sp.csr_matrix((w, (np.zeros(len(items), int), items)), shape=(1, n))
    return np.asarray((v @ similarity).toarray(), dtype=np.float32).ravel()


class Session(Component):
    """Offline stand-in for the live session: a user's last ``window`` training items (by time)
    are the session, scored with :func:`session_scores` over item-kNN similarity."""

    name = "session"

    def __init__(self, window: int = 5, decay: float = 0.7, shrink: float = 10.0) -> None:
        super().__init__(window=window, decay=decay, shrink=shrink)

    def tune_grid(self) -> dict[str, list[float]]:
        return {"window": [1, 3, 5, 10, 20]}

    def fit(self, train: TrainSet) -> Self:
        self.train = train
        self.sim = cooccurrence_similarity(train.binary(), float(self.params["shrink"]), 200)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        t = self._fitted()
        out = np.zeros((len(users), t.n_items), dtype=np.float32)
        w = int(self.params["window"])
        for r, u in enumerate(users):
            out[r] = session_scores(self.sim, t.history(int(u))[-w:], decay=self.params["decay"])
        return out


__all__ = ["EASE", "ItemKNN", "Session", "cooccurrence_similarity", "session_scores"]
