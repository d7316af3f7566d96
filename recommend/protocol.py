"""The evaluation protocol (issue 6, "Quality bar") and its metrics.

Per user, the (user, item) pairs are sorted by the time of their first interaction (ties by item id)
and the last 20 % are held out (round half up, at least one). Users with fewer than 5 pairs stay in
training and are not evaluated. Every item seen in training is a candidate; a user's training items
are excluded from that user's list; the relevant items are the held-out ones. A training pair's
weight sums only its events up to the user's first held-out interaction, so nothing after the cut
leaks into training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data import Interactions

HOLDOUT_SHARE_TENTHS = 2  # 20 %
MIN_EVALUATED = 5


def holdout_size(n: int) -> int:
    """Held-out pairs of a user with ``n`` pairs: 20 % rounded half up, at least one (integer
    arithmetic, so 0.2 * n never meets a binary rounding error)."""
    return max(1, (HOLDOUT_SHARE_TENTHS * n + 5) // 10)


def item_sort_key(items: Sequence[str]) -> list[tuple[int, str]] | list[str]:
    """Ids compare as integers when every one is an integer, else as strings."""
    if all(s.isdigit() for s in items):
        return [(int(s), s) for s in items]  # type: ignore[misc]
    return list(items)


def item_order(items: Sequence[str]) -> np.ndarray:
    """Rank of each id in id order (the protocol's tie-break)."""
    keys = item_sort_key(items)
    order = sorted(range(len(items)), key=lambda i: keys[i])  # type: ignore[index]
    rank = np.empty(len(items), np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(items))
    return rank


@dataclass
class Holdout:
    train: Interactions
    test: dict[str, frozenset[str]]  # evaluated user -> held-out items
    n_users: int
    n_pairs: int

    @property
    def users(self) -> list[str]:
        return list(self.test)


def split(data: Interactions) -> Holdout:
    """Apply the protocol to ``data``: the training events and the held-out items per user.
    Vectorised over integer codes (a few seconds for millions of events)."""
    f = data.frame
    if f.empty:
        return Holdout(data, {}, 0, 0)
    ucode, users = pd.factorize(f["user"])
    icode, items = pd.factorize(f["item"])
    n_items = len(items)
    irank = item_order([str(x) for x in items])
    t = f["time"].to_numpy(np.float64)
    key = ucode.astype(np.int64) * n_items + icode
    # First time of each (user, item) pair.
    o = np.lexsort((t, key))
    pair_key, first_at = np.unique(key[o], return_index=True)
    first = t[o][first_at]
    pu, pi = pair_key // n_items, pair_key % n_items
    # Per user by first time, ties by item id; position within the user's list.
    o = np.lexsort((irank[pi], first, pu))
    pu, pi, first, pair_key = pu[o], pi[o], first[o], pair_key[o]
    n = np.bincount(pu, minlength=len(users))
    start = np.concatenate(([0], np.cumsum(n)[:-1]))
    pos = np.arange(len(pu)) - start[pu]
    h = np.maximum(1, (HOLDOUT_SHARE_TENTHS * n + 5) // 10)
    held = (n[pu] >= MIN_EVALUATED) & (pos >= n[pu] - h[pu])
    cut = np.full(len(users), np.inf)
    np.minimum.at(cut, pu[held], first[held])
    test: dict[str, set[str]] = {}
    for u, i in zip(users[pu[held]].tolist(), items[pi[held]].tolist(), strict=True):
        test.setdefault(u, set()).add(i)
    # Training events: pairs not held out, events up to the user's cut (same instant included:
    # an invoice's lines share a time).
    keep = ~np.isin(key, pair_key[held]) & ~(t > cut[ucode])
    return Holdout(
        data.subset(keep),
        {u: frozenset(test[u]) for u in sorted(test)},  # users in id-string order
        len(users),
        len(pair_key),
    )


@dataclass
class TrainSet:
    """Training events indexed for the components: users and items as integer rows and columns
    (items in id order), the weight matrix, the events, baskets and item descriptions."""

    users: np.ndarray  # str, sorted
    items: np.ndarray  # str, in id order
    matrix: sp.csr_matrix  # users x items, summed weights (float32)
    ratings: sp.csr_matrix | None  # users x items, the last explicit rating
    ev_user: np.ndarray
    ev_item: np.ndarray
    ev_time: np.ndarray
    ev_weight: np.ndarray
    last_time: sp.csr_matrix  # users x items, time of the last event (float64)
    baskets: sp.csr_matrix  # baskets x items, binary
    item_text: list[str]
    item_category: list[str] | None
    now: float
    user_index: dict[str, int] = field(default_factory=dict)
    item_index: dict[str, int] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def binary(self) -> sp.csr_matrix:
        """The weight matrix with every stored entry 1 (built once; do not modify it)."""
        cached = self.__dict__.get("_binary")
        if cached is None:
            cached = self.matrix.copy()
            cached.data[:] = 1.0
            self.__dict__["_binary"] = cached
        return cached

    def history(self, user: int) -> np.ndarray:
        """The user's training items, most recent last."""
        row = self.last_time.getrow(user)
        return row.indices[np.argsort(row.data, kind="mergesort")]


def build(data: Interactions) -> TrainSet:
    f = data.frame
    if f.empty:
        raise ValueError("no training interactions")
    ucode, uniq_u = pd.factorize(f["user"])
    urank = np.empty(len(uniq_u), np.int64)
    urank[np.argsort(np.asarray(uniq_u, dtype=str), kind="stable")] = np.arange(len(uniq_u))
    users = np.empty(len(uniq_u), dtype=object)
    users[urank] = np.asarray(uniq_u, dtype=object)
    icode, uniq_i = pd.factorize(f["item"])
    irank = item_order([str(x) for x in uniq_i])
    items = np.empty(len(uniq_i), dtype=object)
    items[irank] = np.asarray(uniq_i, dtype=object)
    uidx = {u: i for i, u in enumerate(users.tolist())}
    iidx = {it: i for i, it in enumerate(items.tolist())}
    eu = urank[ucode]
    ei = irank[icode]
    et = f["time"].to_numpy(np.float64)
    ew = f["weight"].to_numpy(np.float64)
    shape = (len(users), len(items))
    m = sp.csr_matrix((ew.astype(np.float32), (eu, ei)), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    # Last event time per pair: the maximum over duplicates.
    order = np.lexsort((et, ei, eu))
    lu, li, lt = eu[order], ei[order], et[order]
    last = np.ones(len(lu), dtype=bool)
    last[:-1] = (lu[1:] != lu[:-1]) | (li[1:] != li[:-1])
    last_time = sp.csr_matrix((lt[last], (lu[last], li[last])), shape=shape, dtype=np.float64)
    ratings = None
    if data.has_ratings:
        # The last explicit rating of each pair (later events without one do not erase it).
        r = f["rating"].to_numpy(np.float64)[order]
        rated = ~np.isnan(r)
        ru, ri, rr = lu[rated], li[rated], r[rated]
        rlast = np.ones(len(ru), dtype=bool)
        rlast[:-1] = (ru[1:] != ru[:-1]) | (ri[1:] != ri[:-1])
        ratings = sp.csr_matrix((rr[rlast], (ru[rlast], ri[rlast])), shape=shape, dtype=np.float32)
    bidx, bcodes = pd.factorize(f["basket"])
    baskets = sp.csr_matrix(
        (np.ones(len(bidx), np.float32), (bidx, ei)), shape=(len(bcodes), len(items))
    )
    baskets.sum_duplicates()
    baskets.data[:] = 1.0
    text = [data.item_text.get(it, "") for it in items.tolist()]
    cats = [data.item_category.get(it, "") for it in items.tolist()] if data.item_category else None
    return TrainSet(
        users,
        items,
        m,
        ratings,
        eu,
        ei,
        et,
        ew,
        last_time,
        baskets,
        text,
        cats,
        float(et.max()),
        uidx,
        iidx,
    )


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first, ties by lower index (item id
    order), with the items in ``exclude`` (same rows) left out. Uses ``argpartition``; only rows
    with ties across the k-th place are sorted in full."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if s.ndim == 1:
        s = s[None, :]
    n_rows, n_items = s.shape
    s[~np.isfinite(s)] = -np.inf
    if exclude is not None:
        ex = exclude.tocoo()
        s[ex.row, ex.col] = -np.inf
    k = min(k, n_items)
    if k <= 0:
        return np.zeros((n_rows, 0), np.int64)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    kth = vals.min(axis=1)
    ties = (s >= kth[:, None]).sum(axis=1) > k
    # Sort the chosen k by (-score, index).
    order = np.lexsort((part, -vals), axis=1)
    out = np.take_along_axis(part, order, axis=1)
    for r in np.flatnonzero(ties):
        cand = np.flatnonzero(s[r] >= kth[r])
        o = np.lexsort((cand, -s[r, cand]))
        out[r] = cand[o[:k]]
    # Items with no finite score (excluded) never fill a list: -1 marks an empty slot.
    bad = ~np.isfinite(np.take_along_axis(s, out, axis=1))
    out[bad] = -1
    return out


@dataclass
class UserMetrics:
    precision: np.ndarray
    recall: np.ndarray
    ndcg: np.ndarray
    ap: np.ndarray
    hit: np.ndarray


def rank_metrics(
    recs: Sequence[Sequence[str]], relevant: Sequence[frozenset[str]], k: int
) -> UserMetrics:
    """Per-user precision@k, recall@k, NDCG@k (binary gains, ideal DCG over min(k, |relevant|)),
    AP@k (sum of precision at each hit over min(k, |relevant|)) and hit@k."""
    n = len(recs)
    out = UserMetrics(*(np.zeros(n) for _ in range(5)))
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for u, (rec, rel) in enumerate(zip(recs, relevant, strict=True)):
        hits = np.array([it in rel for it in list(rec)[:k]], dtype=bool)
        nh = int(hits.sum())
        m = min(k, len(rel))
        out.precision[u] = nh / k
        out.recall[u] = nh / len(rel)
        out.ndcg[u] = float(disc[: len(hits)][hits].sum() / disc[:m].sum())
        out.ap[u] = float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits].sum() / m)
        out.hit[u] = float(nh > 0)
    return out


def diversity_features(train: TrainSet) -> tuple[sp.csr_matrix, str]:
    """Item vectors for intra-list diversity, L2-normalised: TF-IDF of the item text when most
    items have text, else one-hot categories, else the item's column of training users."""
    from sklearn.preprocessing import normalize

    if sum(1 for t in train.item_text if t) >= 0.5 * train.n_items:
        from sklearn.feature_extraction.text import TfidfVectorizer

        try:
            v = TfidfVectorizer(sublinear_tf=True).fit_transform(train.item_text)
            return sp.csr_matrix(normalize(v)), "content"
        except ValueError:
            pass
    if train.item_category and any(train.item_category):
        cats, idx = np.unique(np.array(train.item_category, dtype=str), return_inverse=True)
        m = sp.csr_matrix(
            (np.ones(train.n_items), (np.arange(train.n_items), idx)),
            shape=(train.n_items, len(cats)),
        )
        return m, "category"
    return sp.csr_matrix(normalize(train.binary().T.tocsr())), "co-occurrence"


@dataclass
class Result:
    """Metrics of one algorithm under the protocol; ``per_user_ndcg`` feeds the bootstrap."""

    name: str
    k: int
    users: int
    precision: float
    recall: float
    ndcg: float
    map: float
    hit_rate: float
    coverage: float
    diversity: float | None
    novelty: float
    rmse: float | None = None
    mae: float | None = None
    seconds: float = 0.0
    per_user_ndcg: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def row(self) -> dict[str, object]:
        return {
            "algorithm": self.name,
            "users": self.users,
            f"precision@{self.k}": self.precision,
            f"recall@{self.k}": self.recall,
            f"ndcg@{self.k}": self.ndcg,
            f"map@{self.k}": self.map,
            f"hit_rate@{self.k}": self.hit_rate,
            "coverage": self.coverage,
            "diversity": self.diversity,
            "novelty": self.novelty,
            "rmse": self.rmse,
            "mae": self.mae,
            "seconds": round(self.seconds, 3),
        }


def evaluate_lists(
    name: str,
    train: TrainSet,
    users: Sequence[str],
    recs_idx: np.ndarray,
    test: dict[str, frozenset[str]],
    k: int,
    features: sp.csr_matrix | None = None,
) -> Result:
    """Metrics of top-k lists (item indices of ``train``, rows in ``users`` order)."""
    item_ids = train.items
    recs = [[item_ids[j] for j in row if j >= 0] for row in recs_idx]
    rel = [test[u] for u in users]
    m = rank_metrics(recs, rel, k)
    shown = recs_idx[recs_idx >= 0]
    coverage = len(np.unique(shown)) / train.n_items if train.n_items else 0.0
    pop = np.asarray(train.binary().sum(axis=0)).ravel() / max(train.n_users, 1)
    novelty = float(np.mean(-np.log2(pop[shown]))) if len(shown) else 0.0
    diversity = None
    if features is not None:
        vals = []
        for row in recs_idx:
            row = row[row >= 0]
            if len(row) < 2:
                continue
            v = features[row]
            g = (v @ v.T).toarray()
            n = len(row)
            vals.append(1.0 - (g.sum() - np.trace(g)) / (n * (n - 1)))
        diversity = float(np.mean(vals)) if vals else None
    return Result(
        name,
        k,
        len(users),
        float(m.precision.mean()) if len(users) else 0.0,
        float(m.recall.mean()) if len(users) else 0.0,
        float(m.ndcg.mean()) if len(users) else 0.0,
        float(m.ap.mean()) if len(users) else 0.0,
        float(m.hit.mean()) if len(users) else 0.0,
        coverage,
        diversity,
        novelty,
        per_user_ndcg=m.ndcg,
    )


def rating_errors(pred: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """RMSE and MAE of rating predictions."""
    d = np.asarray(pred, np.float64) - np.asarray(actual, np.float64)
    return float(math.sqrt(np.mean(d**2))), float(np.mean(np.abs(d)))


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over users and its percentile bootstrap interval (users resampled with
    replacement, the same users for both)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if len(d) == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 250):
        stop = min(resamples, start + 250)
        idx = rng.integers(0, len(d), size=(stop - start, len(d)))
        means[start:stop] = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(d.mean()), float(lo), float(hi)
