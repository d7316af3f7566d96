"""The hybrid ranker: per-user normalised component scores blended with weights per scenario.

Weights for ``HOME`` (and ``EMAIL``, the same question asked by mail) are tuned on a validation split
carved from the training data with the evaluation protocol itself, never on the test split: starting
from the best single component alone (weight 1), a coordinate search tries each component's weight
on a small grid and keeps a change only if validation NDCG@k rises, until a full pass changes
nothing. The blend is therefore at least as good as the best single component on validation; on the
test split that holds only in expectation, and the evaluation reports what happened.

``PRODUCT`` and ``CART`` blend item-to-item signals (co-occurrence, bought together, content) with
documented default weights. Cold start: a new shopper gets trending + content + session signals, a
new product content similarity.
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
from recommend.protocol import TrainSet, top_k

SCENARIOS = ("HOME", "PRODUCT", "CART", "EMAIL")
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
# Item-to-item scenarios (not tuned offline: the protocol asks a user question).
ITEM_WEIGHTS = {
    "PRODUCT": {"itemknn": 1.0, "together": 1.0, "content": 0.5},
    "CART": {"together": 1.0, "itemknn": 0.5, "content": 0.25},
}
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
    """What the validation search chose and saw."""

    weights: dict[str, float]
    best_single: str
    best_single_ndcg: float
    hybrid_ndcg: float
    evaluations: int
    trace: list[tuple[str, float, float]] = field(default_factory=list)


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
) -> Tuning:
    """Coordinate search of blend weights on validation data (normalised scores in ``parts``)."""

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
    return Tuning(weights, best_name, singles[best_name], best, evaluations, trace)


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
            total = self._item_blend(recent_idx, ITEM_WEIGHTS[scenario])
        elif user is not None and user in t.user_index:
            u = np.array([t.user_index[user]])
            total = self.scores(u, scenario)[0] + session_weight * sess
            exclude[t.matrix[u].indices] = True
        else:
            total = self._cold(recent_idx) + session_weight * sess
        total = np.where(exclude, -np.inf, total)
        return [t.items[j] for j in top_k(total, k)[0] if j >= 0]

    def _item_blend(self, items: list[int], weights: Mapping[str, float]) -> np.ndarray:
        parts: dict[str, np.ndarray] = {}
        for name, c in self.components.items():
            if name == "together" and isinstance(c, BoughtTogether):
                parts[name] = c.with_items(items)
            elif name == "content" and isinstance(c, Content):
                parts[name] = np.sum([c.similar(i) for i in items], axis=0)
            elif name in ("itemknn", "session") and hasattr(c, "sim"):
                parts["itemknn"] = session_scores(c.sim, items, decay=1.0)
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


def default_weights(tuned: Mapping[str, float]) -> dict[str, dict[str, float]]:
    return {
        "HOME": dict(tuned),
        "EMAIL": dict(tuned),
        "PRODUCT": dict(ITEM_WEIGHTS["PRODUCT"]),
        "CART": dict(ITEM_WEIGHTS["CART"]),
    }


__all__ = [
    "SCENARIOS",
    "ArtifactError",
    "Hybrid",
    "Tuning",
    "blend",
    "default_weights",
    "normalise",
    "tune_weights",
]
