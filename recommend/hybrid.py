"""The hybrid ranker: per-user normalised component scores blended with weights per scenario.

Weights for ``HOME`` (and ``EMAIL``, the same question asked by mail) are tuned on a validation split
carved from the training data with the evaluation protocol itself, never on the test split: starting
from the best single component alone (weight 1), a coordinate search tries each component's weight
on a small grid and keeps a change only if validation NDCG@k rises, until a full pass changes
nothing. The blend is therefore at least as good as the best single component on validation; on the
test split that holds only in expectation, and the evaluation reports what happened.

``PRODUCT`` and ``CART`` blend item-to-item signals (item-kNN co-occurrence, bought together,
content) with weights tuned on the same validation split by an item-to-item protocol: for each
validation user the query is the item of the user's last training event (``PRODUCT``) or that
event's basket (``CART``); candidates are all training items but the user's own; relevant are the
user's held-out items. The same coordinate search runs over the same grid, starting from the
better of the documented defaults (``ITEM_WEIGHTS``) and the best single signal, so on validation
the tuned blend is never worse than either. With fewer than ``MIN_ITEM_USERS`` validation users
that have a query, or fewer than two of the signals, the defaults stay. Cold start: a new shopper
gets trending + content + session signals, a new product content similarity.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommend.components import Component
from recommend.components.content import Content
from recommend.components.neighbors import cooccurrence_similarity, session_scores
from recommend.components.popularity import Trending
from recommend.components.together import BoughtTogether
from recommend.data import Interactions
from recommend.protocol import TrainSet, top_k

SCENARIOS = ("HOME", "PRODUCT", "CART", "EMAIL")
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
# Item-to-item scenarios: the defaults, and the start of their tuning (see the module docstring).
ITEM_WEIGHTS = {
    "PRODUCT": {"itemknn": 1.0, "together": 1.0, "content": 0.5},
    "CART": {"together": 1.0, "itemknn": 0.5, "content": 0.25},
}
ITEM_SCENARIOS = ("PRODUCT", "CART")
MIN_ITEM_USERS = 20  # validation users with a query needed to tune an item-to-item scenario
COLD_WEIGHTS = {"trending": 1.0, "content": 0.5, "session": 1.0}


def normalise(scores: np.ndarray, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Min-max per row to [0, 1] over the candidate items (excluded items do not set the range
    and get 0); a constant row becomes 0."""
    s = np.array(scores, dtype=np.float32, copy=True)
    s[~np.isfinite(s)] = np.nan
    if exclude is not None:
        ex = exclude.tocoo()
        s[ex.row, ex.col] = np.nan
    with np.errstate(invalid="ignore"):
        lo = np.nanmin(np.where(np.isnan(s), np.inf, s), axis=1, keepdims=True)
        hi = np.nanmax(np.where(np.isnan(s), -np.inf, s), axis=1, keepdims=True)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    out = np.where(ok, (s - lo) / np.where(ok, span, 1.0), 0.0)
    out[np.isnan(out)] = 0.0
    return out.astype(np.float32)


def blend(parts: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    total: np.ndarray | None = None
    for name, w in weights.items():
        if w == 0 or name not in parts:
            continue
        total = (
            parts[name] * np.float32(w) if total is None else total + parts[name] * np.float32(w)
        )
    if total is None:
        some = next(iter(parts.values()))
        return np.zeros_like(some)
    return total


def ndcg_at(recs: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k of index lists against a boolean relevance matrix (users x items; held-out
    items outside the catalogue count only in ``n_relevant``), vectorised for tuning."""
    safe = np.where(recs >= 0, recs, 0)
    hits = np.take_along_axis(relevant, safe, axis=1) & (recs >= 0)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * disc[: hits.shape[1]]).sum(axis=1)
    ideal = np.cumsum(disc)[np.minimum(n_relevant, k) - 1]
    return dcg / ideal


@dataclass
class Tuning:
    """What the validation search chose and saw (``start_ndcg``: the given start's score)."""

    weights: dict[str, float]
    best_single: str
    best_single_ndcg: float
    hybrid_ndcg: float
    evaluations: int
    trace: list[tuple[str, float, float]] = field(default_factory=list)
    start_ndcg: float | None = None


def tune_weights(
    parts: Mapping[str, np.ndarray],
    relevant: np.ndarray,
    n_relevant: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
    *,
    grid: Sequence[float] = WEIGHT_GRID,
    max_passes: int = 4,
    progress: Callable[[], None] | None = None,
    start: Mapping[str, float] | None = None,
) -> Tuning:
    """Coordinate search of blend weights on validation data (normalised scores in ``parts``),
    from the best single part alone, or from ``start`` when that scores at least as well."""

    def score(w: Mapping[str, float]) -> float:
        recs = top_k(blend(parts, w), k, exclude)
        if progress:
            progress()
        return float(ndcg_at(recs, relevant, n_relevant, k).mean())

    names = list(parts)
    singles = {n: score({n: 1.0}) for n in names}
    best_name = max(names, key=lambda n: (singles[n], -names.index(n)))
    weights = {n: (1.0 if n == best_name else 0.0) for n in names}
    best = singles[best_name]
    trace = [(best_name, 1.0, best)]
    evaluations = len(names)
    start_score = None
    if start is not None:
        given = {n: float(start.get(n, 0.0)) for n in names}
        if any(given.values()):
            start_score = score(given)
            evaluations += 1
            if start_score >= best:
                weights, best = given, start_score
                trace = [("start", 0.0, best)]
    for _ in range(max_passes):
        changed = False
        for n in names:
            for g in grid:
                if g == weights[n]:
                    continue
                trial = {**weights, n: g}
                if not any(trial.values()):
                    continue
                s = score(trial)
                evaluations += 1
                if s > best + 1e-12:
                    best, weights, changed = s, trial, True
                    trace.append((n, g, s))
        if not changed:
            break
    return Tuning(weights, best_name, singles[best_name], best, evaluations, trace, start_score)


# -- item-to-item scenarios (PRODUCT, CART) -------------------------------------------------------


def item_parts(components: Mapping[str, Component], items: list[int]) -> dict[str, np.ndarray]:
    """The raw item-to-item signals for query items (training item indices), by the names
    ``ITEM_WEIGHTS`` uses: bought-together lift, content similarity, and item-kNN co-occurrence
    (from an ``itemknn`` or ``session`` component)."""
    parts: dict[str, np.ndarray] = {}
    for name, c in components.items():
        if name == "together" and isinstance(c, BoughtTogether):
            parts[name] = c.with_items(items)
        elif name == "content" and isinstance(c, Content):
            parts[name] = np.sum([c.similar(i) for i in items], axis=0)
        elif name in ("itemknn", "session") and hasattr(c, "sim"):
            parts["itemknn"] = session_scores(c.sim, items, decay=1.0)
    return parts


def item_queries(
    data: Interactions, train: TrainSet, users: Sequence[str], scenario: str
) -> list[list[int]]:
    """Per user, the query of an item-to-item scenario as training item indices: the item of the
    user's last event in ``data`` (``PRODUCT``), or every item of that event's basket (``CART``);
    the last event is the latest by time, ties by row order. Items outside ``train`` are left out
    (an empty query: the user is skipped)."""
    f = data.frame[["user", "item", "time", "basket"]]
    f = f[f["user"].isin(set(users))]
    last = f.sort_values("time", kind="stable").groupby("user", sort=False).tail(1)
    index = train.item_index
    by_user: dict[str, list[int]] = {}
    if scenario == "PRODUCT":
        for u, i in zip(last["user"], last["item"], strict=True):
            by_user[u] = [index[i]] if i in index else []
    else:
        same = f.merge(last[["user", "basket"]], on=["user", "basket"])
        for u, items in same.groupby("user", sort=False)["item"]:
            by_user[u] = sorted({index[i] for i in items if i in index})
    return [by_user.get(u, []) for u in users]


def item_scores(
    components: Mapping[str, Component],
    queries: Sequence[list[int]],
    exclude: sp.csr_matrix,
    n_items: int,
) -> dict[str, np.ndarray]:
    """Normalised item-to-item signals, one row per query (``exclude``d items set no range)."""
    names: list[str] = []
    rows: dict[str, np.ndarray] = {}
    for r, items in enumerate(queries):
        for name, raw in item_parts(components, items).items():
            if name not in rows:
                names.append(name)
                rows[name] = np.zeros((len(queries), n_items), np.float32)
            rows[name][r] = raw
    return {n: normalise(rows[n], exclude) for n in names}


@dataclass
class ItemTuning:
    """One item-to-item scenario's weights and how they were chosen."""

    scenario: str
    weights: dict[str, float]
    default: dict[str, float]
    users: int  # validation users with a query
    tuned: bool
    reason: str = ""
    validation_ndcg: float | None = None
    default_validation_ndcg: float | None = None
    test_ndcg: float | None = None
    default_test_ndcg: float | None = None
    test_users: int = 0

    def row(self) -> dict[str, object]:
        return {
            "weights": self.weights,
            "default_weights": self.default,
            "tuned": self.tuned,
            "reason": self.reason,
            "validation_users": self.users,
            "validation_ndcg": self.validation_ndcg,
            "default_validation_ndcg": self.default_validation_ndcg,
            "test_users": self.test_users,
            "test_ndcg": self.test_ndcg,
            "default_test_ndcg": self.default_test_ndcg,
        }


def item_ndcg(
    components: Mapping[str, Component],
    train: TrainSet,
    data: Interactions,
    users: Sequence[str],
    relevant: np.ndarray,
    n_relevant: np.ndarray,
    k: int,
    scenario: str,
    weight_sets: Sequence[Mapping[str, float]],
) -> tuple[list[float], int]:
    """Mean NDCG@k of each weight set in an item-to-item scenario (the protocol of the module
    docstring: queries from ``data``, a user's training items excluded), over the users with a
    query; and how many users that is."""
    queries = item_queries(data, train, users, scenario)
    keep = [r for r, q in enumerate(queries) if q]
    if not keep:
        return [float("nan")] * len(weight_sets), 0
    rows = np.array([train.user_index[users[r]] for r in keep], dtype=np.int64)
    exclude = train.binary()[rows]
    parts = item_scores(components, [queries[r] for r in keep], exclude, train.n_items)
    out = []
    for w in weight_sets:
        recs = top_k(blend(parts, w), k, exclude)
        out.append(float(ndcg_at(recs, relevant[keep], n_relevant[keep], k).mean()))
    return out, len(keep)


def tune_item_weights(
    components: Mapping[str, Component],
    train: TrainSet,
    data: Interactions,
    users: Sequence[str],
    relevant: np.ndarray,
    n_relevant: np.ndarray,
    k: int,
    scenario: str,
    *,
    grid: Sequence[float] = WEIGHT_GRID,
) -> ItemTuning:
    """Tune one item-to-item scenario on validation (``train``/``data`` the validation training
    split, ``relevant`` the users' held-out items over ``train``'s items)."""
    default = dict(ITEM_WEIGHTS[scenario])
    queries = item_queries(data, train, users, scenario)
    keep = [r for r, q in enumerate(queries) if q]
    if len(keep) < MIN_ITEM_USERS:
        return ItemTuning(
            scenario, default, default, len(keep), False, f"only {len(keep)} validation users"
        )
    rows = np.array([train.user_index[users[r]] for r in keep], dtype=np.int64)
    exclude = train.binary()[rows]
    parts = item_scores(components, [queries[r] for r in keep], exclude, train.n_items)
    if len(parts) < 2:
        return ItemTuning(
            scenario, default, default, len(keep), False, "fewer than two item-to-item signals"
        )
    t = tune_weights(parts, relevant[keep], n_relevant[keep], exclude, k, grid=grid, start=default)
    weights = {**default, **t.weights}
    return ItemTuning(
        scenario,
        weights,
        default,
        len(keep),
        True,
        validation_ndcg=t.hybrid_ndcg,
        default_validation_ndcg=t.start_ndcg,
    )


class Hybrid:
    """Fitted components plus blend weights per scenario; what a model version saves."""

    def __init__(
        self,
        train: TrainSet,
        components: Mapping[str, Component],
        weights: Mapping[str, Mapping[str, float]],
    ) -> None:
        self.train = train
        self.components = dict(components)
        self.weights = {s: dict(w) for s, w in weights.items()}
        self._item_sim: sp.csr_matrix | None = None

    # -- personal lists -------------------------------------------------------------------------
    def scores(self, users: np.ndarray, scenario: str = "HOME") -> np.ndarray:
        """Blended scores for known users (rows of the training matrix); their training items are
        excluded from the normalisation range."""
        w = self.weights.get(scenario) or self.weights["HOME"]
        exclude = self.train.binary()[users]
        parts = {
            n: normalise(c.scores(users), exclude)
            for n, c in self.components.items()
            if w.get(n, 0.0) != 0.0
        }
        return blend(parts, w)

    def top(self, users: np.ndarray, k: int, scenario: str = "HOME") -> np.ndarray:
        return top_k(self.scores(users, scenario), k, self.train.binary()[users])

    # -- request time -----------------------------------------------------------------------------
    def item_similarity(self) -> sp.csr_matrix:
        """Item-item co-occurrence similarity for session signals (reused from a fitted session or
        item-kNN component when there is one)."""
        if self._item_sim is None:
            for c in self.components.values():
                sim = getattr(c, "sim", None)
                if isinstance(sim, sp.csr_matrix):
                    self._item_sim = sim
                    break
            else:
                self._item_sim = cooccurrence_similarity(self.train.binary(), 10.0, 200)
        return self._item_sim

    def items(self, ids: Sequence[str]) -> list[int]:
        return [self.train.item_index[i] for i in ids if i in self.train.item_index]

    def recommend(
        self,
        *,
        user: str | None = None,
        recent: Sequence[str] = (),
        scenario: str = "HOME",
        k: int = 10,
        session_weight: float = 1.0,
    ) -> list[str]:
        """Top-k item ids. A known shopper gets the scenario blend plus the session signal of
        ``recent`` (the visit's last items, oldest first); an unknown one (cold start) gets
        trending + content of the recent items + session. Items the shopper has and the recent
        ones are excluded."""
        t = self.train
        n = t.n_items
        recent_idx = self.items(recent)
        exclude = np.zeros(n, dtype=bool)
        exclude[recent_idx] = True
        sess = normalise(session_scores(self.item_similarity(), recent_idx)[None, :])[0]
        if scenario in ITEM_WEIGHTS and recent_idx:
            total = self._item_blend(
                recent_idx, self.weights.get(scenario) or ITEM_WEIGHTS[scenario]
            )
        elif user is not None and user in t.user_index:
            u = np.array([t.user_index[user]])
            total = self.scores(u, scenario)[0] + session_weight * sess
            exclude[t.matrix[u].indices] = True
        else:
            total = self._cold(recent_idx) + session_weight * sess
        total = np.where(exclude, -np.inf, total)
        return [t.items[j] for j in top_k(total, k)[0] if j >= 0]

    def _item_blend(self, items: list[int], weights: Mapping[str, float]) -> np.ndarray:
        parts = item_parts(self.components, items)
        return blend({n: normalise(p[None, :])[0] for n, p in parts.items()}, weights)

    def _cold(self, recent: list[int]) -> np.ndarray:
        n = self.train.n_items
        parts: dict[str, np.ndarray] = {}
        for c in self.components.values():
            if isinstance(c, Trending):
                parts["trending"] = c.heat
            elif isinstance(c, Content) and recent:
                parts["content"] = np.sum([c.similar(i) for i in recent], axis=0)
        if "trending" not in parts:
            parts["trending"] = np.asarray(self.train.binary().sum(axis=0)).ravel()
        normed = {k: normalise(v[None, :])[0] for k, v in parts.items()}
        w = {k: v for k, v in COLD_WEIGHTS.items() if k != "session"}
        out = blend(normed, w)
        return out if out.shape == (n,) else np.zeros(n, np.float32)

    def similar_to_text(self, text: str, k: int = 10) -> list[str]:
        """Cold start for a new product: the items whose text is most like its text."""
        for c in self.components.values():
            if isinstance(c, Content):
                s = c.text_scores(text)
                if np.any(s > 0):
                    return [self.train.items[j] for j in top_k(s, k)[0] if j >= 0 and s[j] > 0]
        return []

    # -- artifacts --------------------------------------------------------------------------------
    def dumps(self) -> bytes:
        body = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body

    def save(self, path: Path | str) -> str:
        """Write the model; returns its sha256 (the model version's checksum)."""
        data = self.dumps()
        p = Path(path)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
        return data[len(MAGIC) : len(MAGIC) + 64].decode()

    @staticmethod
    def loads(data: bytes) -> Hybrid:
        """Load a saved model; a truncated, corrupt or foreign file raises :class:`ArtifactError`.
        Only load artifacts this deployment wrote (pickle runs code)."""
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 65:
            raise ArtifactError("not a Precis recommendation model")
        digest = data[len(MAGIC) : len(MAGIC) + 64].decode(errors="replace")
        body = data[len(MAGIC) + 65 :]
        if hashlib.sha256(body).hexdigest() != digest:
            raise ArtifactError("model file is corrupt (checksum mismatch)")
        obj = pickle.load(io.BytesIO(body))
        if not isinstance(obj, Hybrid):
            raise ArtifactError("model file holds something else")
        return obj

    @staticmethod
    def load(path: Path | str) -> Hybrid:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ArtifactError(f"cannot read model {path}: {exc.strerror}") from exc
        return Hybrid.loads(data)


MAGIC = b"PRECIS-RECO-1\n"


class ArtifactError(RuntimeError):
    """A model artifact that cannot be used (missing, corrupt, foreign)."""


def default_weights(
    tuned: Mapping[str, float], item: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, dict[str, float]]:
    """Weights per scenario: ``tuned`` for HOME and EMAIL, ``item`` (tuned) or the defaults for
    PRODUCT and CART."""
    item = item or {}
    return {
        "HOME": dict(tuned),
        "EMAIL": dict(tuned),
        "PRODUCT": dict(item.get("PRODUCT") or ITEM_WEIGHTS["PRODUCT"]),
        "CART": dict(item.get("CART") or ITEM_WEIGHTS["CART"]),
    }


__all__ = [
    "ITEM_WEIGHTS",
    "SCENARIOS",
    "ArtifactError",
    "Hybrid",
    "ItemTuning",
    "Tuning",
    "blend",
    "default_weights",
    "item_parts",
    "normalise",
    "tune_item_weights",
    "tune_weights",
]
