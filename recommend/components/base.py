"""What every component is: fitted on a :class:`~recommend.protocol.TrainSet`, it scores every item
for a batch of users in one pass (dense ``len(users) x n_items`` array, higher is better)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from recommend.protocol import TrainSet


class Component(ABC):
    """A scorer. ``params`` are its settings (reported and saved with the model)."""

    name: ClassVar[str]
    personal: ClassVar[bool] = True  # False: the same scores for everyone (popularity, trending)

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = params
        self.train: TrainSet | None = None
        self.spec = self.name  # as the user wrote it (set by components.make)

    @abstractmethod
    def fit(self, train: TrainSet) -> Self: ...

    @abstractmethod
    def scores(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for the users (row indices of the training matrix)."""

    def label(self) -> str:
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})"

    def tune_grid(self) -> dict[str, list[Any]]:
        """Values of one parameter to try on the validation split (empty: nothing to tune)."""
        return {}

    def _fitted(self) -> TrainSet:
        if self.train is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self.train


def rows_dense(m: sp.spmatrix, users: np.ndarray) -> np.ndarray:
    return np.asarray(sp.csr_matrix(m)[users].toarray(), dtype=np.float32)


def prune_top(sim: sp.spmatrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row of a sparse similarity (the rest set to 0)."""
    s = sp.csr_matrix(sim, dtype=np.float32)
    s.eliminate_zeros()
    indptr, indices, data = s.indptr, s.indices, s.data
    keep = np.zeros(len(data), dtype=bool)
    for r in range(s.shape[0]):
        a, b = indptr[r], indptr[r + 1]
        if b - a <= k:
            keep[a:b] = True
        else:
            top = np.argpartition(-data[a:b], k - 1)[:k]
            keep[a + top] = True
    rows = np.repeat(np.arange(s.shape[0]), np.diff(indptr))[keep]
    return sp.csr_matrix((data[keep], (rows, indices[keep])), shape=s.shape, dtype=np.float32)
