"""Surprise rating predictors as components, trained on a Surprise ``Dataset`` built from the
weighted interactions (explicit ratings as given; implicit weights as ``1 + log2(weight)``).

Top-N never calls ``predict`` per item. Factor models score every item in one matrix product over
their learnt parameters (SVD: ``mu + b_u + b_i + p_u q_i``; SVD++ adds ``|N(u)|^-1/2 sum y_j`` to
``p_u``; NMF ``p_u q_i``; BaselineOnly ``mu + b_u + b_i``). KNN and SlopeOne have no factors: their
estimate is computed for all items of a user at once from Surprise's own similarity (or deviation)
matrix with numpy, the same formula as ``estimate`` (tests compare them): item-based costs
``O(|I_u| x n_items)`` per user, user-based ``O(ratings of the positively similar users)``. Both need
Surprise's dense ``n x n`` similarity (items or users), and SlopeOne two dense ``n_items^2`` arrays:
about 3.2 GB each at 20,000 items in float64, and user-based KNN at 100,000 users needs 80 GB, so
none of them is practical at that size (see docs/recommendations.md).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.components.base import Component
from recommend.protocol import TrainSet

SIMILARITIES = ("cosine", "pearson", "pearson_baseline", "msd")


def surprise_ratings(train: TrainSet) -> tuple[pd.DataFrame, tuple[float, float]]:
    """One rating per training (user, item) pair, and the rating scale."""
    m = train.matrix.tocoo()
    implicit = 1.0 + np.log2(np.maximum(m.data.astype(np.float64), 1.0))
    values = implicit
    if train.ratings is not None:
        r = train.ratings.tocsr()
        explicit = np.asarray(r[m.row, m.col]).ravel()
        values = np.where(explicit != 0, explicit, implicit)
    lo = float(values.min()) if len(values) else 1.0
    hi = float(values.max()) if len(values) else 5.0
    if hi <= lo:
        hi = lo + 1.0
    df = pd.DataFrame({"u": m.row.astype(np.int64), "i": m.col.astype(np.int64), "r": values})
    return df, (lo, hi)


class SurpriseComponent(Component):
    """Base for one Surprise algorithm; ``params`` go to its constructor."""

    algorithm: ClassVar[str]
    rates: ClassVar[bool] = True  # predicts ratings: RMSE and MAE apply

    def __init__(self, **params: Any) -> None:
        params.setdefault("seed", 0)
        super().__init__(**params)

    def _algo_kwargs(self) -> dict[str, Any]:
        p = dict(self.params)
        seed = p.pop("seed")
        if self.algorithm in ("SVD", "SVDpp", "NMF"):
            p["random_state"] = seed
        if self.algorithm == "BaselineOnly":
            p["verbose"] = False
        return p

    def check(self) -> None:
        """Raise TypeError or ValueError if Surprise refuses these parameters."""
        import surprise

        algo = getattr(surprise, self.algorithm)(**self._algo_kwargs())
        for name in ("n_factors", "n_epochs", "k", "min_k"):
            value = getattr(algo, name, None)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer")

    def fit(self, train: TrainSet) -> Self:
        import surprise

        self.train = train
        df, self.scale = surprise_ratings(train)
        data = surprise.Dataset.load_from_df(df, surprise.Reader(rating_scale=self.scale))
        self.trainset = data.build_full_trainset()
        cls = getattr(surprise, self.algorithm)
        self.algo = cls(**self._algo_kwargs())
        self.algo.fit(self.trainset)
        ts = self.trainset
        # Our index -> Surprise inner id (every training user and item is in the trainset).
        self.u_inner = np.array([ts.to_inner_uid(u) for u in range(train.n_users)], np.int64)
        self.i_inner = np.array([ts.to_inner_iid(i) for i in range(train.n_items)], np.int64)
        self._prepare()
        return self

    def _prepare(self) -> None:
        pass

    def scores(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ratings_for(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings, clipped to the scale, for (user, item) index pairs."""
        out = np.empty(len(users), np.float64)
        for u in np.unique(users):
            sel = users == u
            out[sel] = self.scores(np.array([u]))[0, items[sel]]
        return np.clip(out, *self.scale)


class _Factors(SurpriseComponent):
    def _prepare(self) -> None:
        a, ts = self.algo, self.trainset
        self.mu = float(ts.global_mean)
        biased = bool(getattr(a, "biased", True))
        self.bu = a.bu[self.u_inner] if biased and hasattr(a, "bu") else np.zeros(len(self.u_inner))
        self.bi = a.bi[self.i_inner] if biased and hasattr(a, "bi") else np.zeros(len(self.i_inner))
        if not biased:
            self.mu = 0.0
        self.qi = a.qi[self.i_inner]
        self.pu = self._user_vectors()

    def _user_vectors(self) -> np.ndarray:
        return np.asarray(self.algo.pu[self.u_inner])

    def scores(self, users: np.ndarray) -> np.ndarray:
        s = self.pu[users] @ self.qi.T + self.bi[None, :] + (self.mu + self.bu[users])[:, None]
        return s.astype(np.float32)


class SVD(_Factors):
    name = "svd"
    algorithm = "SVD"


class SVDpp(_Factors):
    name = "svdpp"
    algorithm = "SVDpp"

    def _user_vectors(self) -> np.ndarray:
        a, ts = self.algo, self.trainset
        out = np.array(a.pu, dtype=np.float64, copy=True)
        for u in range(ts.n_users):
            js = [j for j, _ in ts.ur[u]]
            out[u] += a.yj[js].sum(axis=0) / np.sqrt(len(js))
        return out[self.u_inner]


class NMF(_Factors):
    name = "nmf"
    algorithm = "NMF"


class BaselineOnly(SurpriseComponent):
    name = "baselineonly"
    algorithm = "BaselineOnly"

    def _prepare(self) -> None:
        bu, bi = np.asarray(self.algo.bu), np.asarray(self.algo.bi)
        self.mu = float(self.trainset.global_mean)
        self.bu, self.bi = bu[self.u_inner], bi[self.i_inner]

    def scores(self, users: np.ndarray) -> np.ndarray:
        return (self.mu + self.bu[users][:, None] + self.bi[None, :]).astype(np.float32)


class _KNN(SurpriseComponent):
    """KNNWithMeans / KNNBaseline; params ``k``, ``min_k``, ``user_based``, ``sim``
    (cosine, pearson, pearson_baseline) become Surprise's ``sim_options``."""

    def __init__(self, **params: Any) -> None:
        params.setdefault("k", 40)
        params.setdefault("min_k", 1)
        params.setdefault("user_based", False)
        params.setdefault(
            "sim", "pearson_baseline" if self.algorithm == "KNNBaseline" else "cosine"
        )
        if params["sim"] not in SIMILARITIES:
            raise ValueError(f"sim must be one of {', '.join(SIMILARITIES)}")
        params["user_based"] = str(params["user_based"]).lower() in ("1", "true", "yes", "user")
        super().__init__(**params)

    def _algo_kwargs(self) -> dict[str, Any]:
        p = self.params
        return {
            "k": int(p["k"]),
            "min_k": int(p["min_k"]),
            "sim_options": {"name": p["sim"], "user_based": p["user_based"]},
            "verbose": False,
        }

    def _prepare(self) -> None:
        ts = self.trainset
        self.ub = bool(self.params["user_based"])
        rows, cols, vals = [], [], []
        for u, lst in ts.ur.items():
            for i, r in lst:
                rows.append(u)
                cols.append(i)
                vals.append(r)
        self.r_inner = sp.csr_matrix(
            (np.array(vals, np.float64), (rows, cols)), shape=(ts.n_users, ts.n_items)
        )
        self.mu = float(ts.global_mean)
        if self.algorithm == "KNNBaseline":
            bu, bi = self.algo.bu, self.algo.bi
        else:
            bu, bi = np.zeros(ts.n_users), np.zeros(ts.n_items)
        self.bu_in, self.bi_in = np.asarray(bu), np.asarray(bi)
        self.inv_items = np.argsort(self.i_inner)  # inner item id -> our index

    def _estimate_inner(self, u: int) -> np.ndarray:
        """Estimates for every item (inner ids) for inner user ``u``."""
        a, k, min_k = self.algo, int(self.params["k"]), int(self.params["min_k"])
        n_items = self.trainset.n_items
        baseline = self.algorithm == "KNNBaseline"
        if self.ub:
            sim_row = a.sim[u]
            pos = np.flatnonzero(sim_row > 0)
            order = pos[np.argsort(-sim_row[pos], kind="stable")]
            r = sp.csc_matrix(self.r_inner[order])
            r.sort_indices()
            counts = np.diff(r.indptr)
            rank = np.arange(r.nnz) - np.repeat(r.indptr[:-1], counts)
            sel = rank < k
            nb = order[r.indices[sel]]
            col = np.repeat(np.arange(n_items), counts)[sel]
            s = sim_row[nb]
            if baseline:
                dev = r.data[sel] - (self.mu + self.bu_in[nb] + self.bi_in[col])
                base = self.mu + self.bu_in[u] + self.bi_in
            else:
                dev = r.data[sel] - a.means[nb]
                base = np.full(n_items, a.means[u])
            num = np.bincount(col, weights=s * dev, minlength=n_items)
            den = np.bincount(col, weights=s, minlength=n_items)
            cnt = np.bincount(col, minlength=n_items)
        else:
            # The user's items in Surprise's own order: among equal similarities it keeps the
            # earlier ones (heapq.nlargest is stable), and so does the stable sort here.
            js = np.array([j for j, _ in self.trainset.ur[u]], np.int64)
            rs = np.array([r for _, r in self.trainset.ur[u]], np.float64)
            s = a.sim[:, js]  # n_items x |I_u|
            if len(js) > k:
                drop = np.argsort(-s, axis=1, kind="stable")[:, k:]
                s = s.copy()
                np.put_along_axis(s, drop, 0.0, axis=1)
            s = np.where(s > 0, s, 0.0)
            if baseline:
                dev = rs - (self.mu + self.bi_in[js] + self.bu_in[u])
                base = self.mu + self.bu_in[u] + self.bi_in
            else:
                dev = rs - a.means[js]
                base = np.asarray(a.means, np.float64).copy()
            num = s @ dev
            den = s.sum(axis=1)
            cnt = (s > 0).sum(axis=1)
        num = np.where(cnt < min_k, 0.0, num)
        with np.errstate(divide="ignore", invalid="ignore"):
            adj = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return base + adj

    def scores(self, users: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), len(self.i_inner)), np.float32)
        for r, u in enumerate(users):
            out[r] = self._estimate_inner(int(self.u_inner[u]))[self.i_inner]
        return out


class KNNWithMeans(_KNN):
    name = "knnwithmeans"
    algorithm = "KNNWithMeans"


class KNNBaseline(_KNN):
    name = "knnbaseline"
    algorithm = "KNNBaseline"


class SlopeOne(SurpriseComponent):
    """est(u, i) = mean_u + mean of dev(i, j) over the user's items j co-rated with i."""

    name = "slopeone"
    algorithm = "SlopeOne"

    def _algo_kwargs(self) -> dict[str, Any]:
        return {}

    def scores(self, users: np.ndarray) -> np.ndarray:
        a, ts = self.algo, self.trainset
        out = np.empty((len(users), len(self.i_inner)), np.float32)
        for r, u in enumerate(users):
            ui = int(self.u_inner[u])
            js = np.array([j for j, _ in ts.ur[ui]], np.int64)
            f = a.freq[:, js] > 0
            n = f.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                dev = np.where(f, a.dev[:, js], 0.0)  # Surprise leaves 0/0 (NaN) where freq is 0
                adj = np.where(n > 0, dev.sum(axis=1) / np.maximum(n, 1), 0.0)
            out[r] = (a.user_mean[ui] + adj)[self.i_inner]
        return out


SURPRISE = (SVD, SVDpp, NMF, BaselineOnly, KNNWithMeans, KNNBaseline, SlopeOne)
