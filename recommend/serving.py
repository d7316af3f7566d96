"""What API processes serve from: a compact, pickle-free bundle built from a trained
:class:`recommend.hybrid.Hybrid` at refresh time, and the request-time ranking over it.

INTERFACE CONTRACT (filled in by the bundle work; the API layer codes against exactly this).

Build (refresh time, in the training thread): ``Bundle.build(hybrid, top_n=50)`` precomputes with
one matrix product per block of users (``recommend.precompute``, never ``predict`` in a loop):

* ``user_top``: every known user's best ``top_n`` items for HOME (EMAIL uses the same list), the
  blend normalised per user, training items excluded;
* per item: ``similar`` (PRODUCT blend: item-kNN, content), ``together`` (bought-together lift) and
  ``content`` neighbour lists of ``top_n``;
* ``trending`` (global order) and trending per category path (sub-categories roll up);
  ``popular`` (global order);
* a sparse item-item similarity pruned to ``top_n`` per item for session signals;
* users' training items (CSR) so a personal list and "because you viewed X" can be explained;
* TF-IDF vocabulary and idf so a product the model has never seen gets content neighbours from
  its text.

Items are the model's item keys (product ids as strings, the way ``domain.recommend.service``
trains); ``Bundle.items`` is that array and ``Bundle.item_index`` maps key -> position. Users are
customer ids as strings (``Bundle.user_index``).

Serialisation: ``Bundle.dumps() -> bytes`` / ``Bundle.loads(bytes) -> Bundle`` (numpy ``.npz``
with ``allow_pickle=False``, a magic header and a sha256 checked on load; a truncated, corrupt or
foreign blob raises :class:`recommend.hybrid.ArtifactError`).

Request time (pure numpy, no I/O, thread-safe, typically well under a millisecond):
``Bundle.rank(request) -> list[Ranked]``, ``Bundle.similar_items``, ``Bundle.bought_together``,
``Bundle.trending_items`` and ``Bundle.similar_to_text``, all taking a :class:`View` with the
live catalogue facts (aligned with ``Bundle.items``), so business rules and filters are applied
to every list whichever component produced it, and diversity caps are enforced.

How the bundle is made (details the contract leaves open):

* ``user_top`` scores are the HOME blend divided by the user's best score (so the best is 1, all in
  [0, 1]); empty slots (a user who saw almost everything) hold item -1 and score 0.
* ``similar`` is ``Hybrid._item_blend`` of one item in blocks of items: item-kNN similarity (the
  hybrid's item-kNN or session component, else :meth:`Hybrid.item_similarity`), bought-together lift
  and TF-IDF cosine, each min-max normalised per row and blended with ``hybrid.weights["PRODUCT"]``;
  a part the hybrid lacks (no ``together`` or ``content`` component) is fitted on the training set
  for the bundle (both take well under a second at 20,000 products). The item itself is left out,
  and so are zero scores. ``together`` holds raw lift, ``content`` raw cosine.
* ``trending`` is the hybrid's trending heat (or a 14-day half-life one fitted for the bundle),
  ``popular`` the distinct training users per item; ``trending_order`` sorts by heat, then
  popularity, then item id (so it is also the popular order where nothing trends).
* Requests only read the bundle (no caches filled lazily), so one bundle serves every thread.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recommend.kernels import diversity_cap, rank_pool, row_sources, warm

if TYPE_CHECKING:
    from recommend.hybrid import Hybrid

SCENARIOS = ("HOME", "PRODUCT", "CART", "EMAIL")
# Reason kinds (the API turns them into text: "because you viewed X", "popular in Y", ...)
REASONS = (
    "personal",  # your history (factor / neighbour models); source = the history item if known
    "viewed",  # session signal: source = the product viewed / carted a moment ago
    "similar",  # similar to source (PRODUCT scenario, similarProducts)
    "together",  # bought together with source (CART scenario, boughtTogether)
    "trending",  # trending (category = where, if per category)
    "popular",  # popular overall / in category
    "content",  # similar text to source
)

# --- request-time constants ----------------------------------------------------------------------
# Session signal: a recent event of the visit counts
# ``KIND_WEIGHTS[kind] * RECENT_DECAY ** position * 0.5 ** (age_seconds / RECENT_HALF_LIFE)``
# (position 0 is the newest), so newer events and carts / purchases weigh more; an unknown kind
# counts as a view. At most ``MAX_RECENT`` events are used.
KIND_WEIGHTS = {"view": 1.0, "favorite": 1.5, "add_to_cart": 2.0, "purchase": 2.5}
RECENT_DECAY = 0.7
RECENT_HALF_LIFE = 1800.0
MAX_RECENT = 20
_DECAY = [RECENT_DECAY**pos for pos in range(MAX_RECENT)]
# Request-time blends. Every part is first divided by its maximum over the candidates (so in
# [0, 1], as the hybrid normalises its parts), then weighted; an item's reason is the part that
# contributed most to its score.
HOME_WEIGHTS = {"personal": 1.0, "viewed": 1.0}  # Hybrid.recommend: scores + 1.0 * session
COLD_WEIGHTS = {"trending": 1.0, "content": 0.5, "viewed": 1.0}  # recommend.hybrid.COLD_WEIGHTS
PRODUCT_WEIGHTS = {"similar": 1.0, "viewed": 0.5, "personal": 0.25}
CART_WEIGHTS = {"viewed": 0.5, "personal": 0.25}
# CART's item signals, summed over the cart's items, are blended with the hybrid's CART weights
# (tuned on validation, ``hybrid.weights["CART"]``, kept in the bundle's meta): bought-together
# lists ("together"), the session similarity rows ("itemknn", reason "similar") and content lists
# ("content"); these defaults (``recommend.hybrid.ITEM_WEIGHTS``) when the meta has none.
CART_ITEM_WEIGHTS = {"together": 1.0, "itemknn": 0.5, "content": 0.25}
# A request-time part's reason (parts not listed are their own reason).
PART_REASONS = {"itemknn": "similar"}
# "personal" in PRODUCT / CART only re-weights candidates found by the item signals.
# Items found only by widening the pool (walking the trending order, when the candidates left after
# filtering cannot fill the answer or the diversity caps) score ``WIDEN_WEIGHT * trending``.
WIDEN_WEIGHT = 0.01
# The diversity pass looks at most this many times ``k`` candidates, best first.
DIVERSITY_WINDOW = 20
# Empty parts (a request without any): what the ranking kernel takes.
_NO_ITEMS = np.zeros(0, np.int64)
_NO_SCORES = np.zeros(0, np.float64)
# Bundle format.
MAGIC = b"PRECIS-SERVE-1\n"
FORMAT = 1


@dataclass(frozen=True)
class View:
    """Live catalogue facts aligned with ``Bundle.items`` (built by the API process from its
    catalogue cache). ``allowed[i]`` False: never return item ``i`` (archived, inactive, out of
    stock, or excluded by the request's filter). ``category[i]`` / ``brand[i]``: integer codes
    (-1 unknown) for the diversity caps."""

    allowed: np.ndarray  # bool, len(items)
    category: np.ndarray  # int32 codes, -1 unknown
    brand: np.ndarray  # int32 codes, -1 unknown
    max_share: float = 0.5  # at most this share of the answer from one category, and one brand


@dataclass(frozen=True)
class Recent:
    """One product event of the shopper's current visit (newest first in a request)."""

    item: str  # item key
    kind: str  # view, add_to_cart, favorite, purchase
    age_seconds: float


@dataclass(frozen=True)
class RankRequest:
    scenario: str = "HOME"
    user: str | None = None  # None, unknown, or personal=False: non-personal answer
    personal: bool = True  # False without personalization consent
    product: str | None = None  # PRODUCT scenario: the product on screen
    cart: Sequence[str] = ()  # CART scenario: the cart's items
    recent: Sequence[Recent] = ()  # session signals (used also when not personal)
    exclude: frozenset[str] = frozenset()  # e.g. purchased items (excludePurchased)
    k: int = 10


@dataclass(frozen=True)
class Ranked:
    item: str
    score: float
    reason: str  # one of REASONS
    source: str | None = None  # the item that explains it (viewed / similar / together / ...)
    category: int = -1  # the View category code, for "popular in Y"


# One part of a request-time blend: a block of rows (items, padded with -1 or n; scores, padded
# with 0) and the item each row comes from (None where explained otherwise), rows in read order.
_Part = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _empty_lists() -> np.ndarray:
    return np.zeros((0, 0), np.int32)


def _empty(dtype: Any) -> np.ndarray:
    return np.zeros(0, dtype)


# Arrays a bundle stores (name -> dtype); every one must be present in a blob.
ARRAYS: dict[str, Any] = {
    "items": np.str_,
    "users": np.str_,
    "user_top_ids": np.int32,
    "user_top_scores": np.float32,
    "similar_ids": np.int32,
    "similar_scores": np.float32,
    "together_ids": np.int32,
    "together_scores": np.float32,
    "content_ids": np.int32,
    "content_scores": np.float32,
    "trending": np.float32,
    "popular": np.float32,
    "trending_order": np.int32,
    "popular_order": np.int32,
    "sim_indptr": np.int64,
    "sim_indices": np.int32,
    "sim_data": np.float32,
    "train_indptr": np.int64,
    "train_indices": np.int32,
    "tfidf_indptr": np.int64,
    "tfidf_indices": np.int32,
    "tfidf_data": np.float32,
    "vocabulary": np.str_,
    "idf": np.float32,
    "item_category": np.str_,
}
# Arrays a bundle may lack (built before they existed): name -> dtype. An absent one loads empty
# and requests compute what it holds; a present one is checked as strictly as the others.
OPTIONAL: dict[str, Any] = {
    "user_top_source": np.int32,
}


@dataclass
class Bundle:
    items: np.ndarray  # str item keys
    users: np.ndarray  # str user keys
    item_index: dict[str, int] = field(default_factory=dict)
    user_index: dict[str, int] = field(default_factory=dict)
    # -- added by the bundle work (all aligned with items / users) -------------------------------
    user_top_ids: np.ndarray = field(default_factory=_empty_lists)  # int32 users x top_n, -1
    user_top_scores: np.ndarray = field(default_factory=_empty_lists)  # float32, best = 1
    similar_ids: np.ndarray = field(default_factory=_empty_lists)  # int32 items x top_n
    similar_scores: np.ndarray = field(default_factory=_empty_lists)  # float32 PRODUCT blend
    together_ids: np.ndarray = field(default_factory=_empty_lists)
    together_scores: np.ndarray = field(default_factory=_empty_lists)  # float32 log lift
    content_ids: np.ndarray = field(default_factory=_empty_lists)
    content_scores: np.ndarray = field(default_factory=_empty_lists)  # float32 cosine
    trending: np.ndarray = field(default_factory=lambda: _empty(np.float32))  # heat per item
    popular: np.ndarray = field(default_factory=lambda: _empty(np.float32))  # users per item
    trending_order: np.ndarray = field(default_factory=lambda: _empty(np.int32))  # best first
    popular_order: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    sim_indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # session sim
    sim_indices: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    sim_data: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    train_indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # users' items
    train_indices: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    tfidf_indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # items x terms
    tfidf_indices: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    tfidf_data: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    vocabulary: np.ndarray = field(default_factory=lambda: _empty(np.str_))  # term of column j
    idf: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    item_category: np.ndarray = field(default_factory=lambda: _empty(np.str_))  # "" unknown
    # For each listed item of ``user_top_ids``: the shopper's training item most similar to it
    # (what "because you viewed X" names), -1 none; empty in a bundle built before it existed.
    user_top_source: np.ndarray = field(default_factory=_empty_lists)  # int32 users x top_n
    meta: dict[str, Any] = field(default_factory=dict)  # top_n, ngram_max, weights, format

    def __post_init__(self) -> None:
        # The item keys as Python strings (what answers carry), shared with ``item_index``.
        self._keys: list[str] = [str(k) for k in self.items.tolist()]
        if not self.item_index:
            self.item_index = {k: i for i, k in enumerate(self._keys)}
        if not self.user_index:
            self.user_index = {str(k): i for i, k in enumerate(self.users.tolist())}
        n = len(self.items)
        heat = np.asarray(self.trending, np.float32)
        if len(heat) == n and n:
            lo, hi = float(heat.min()), float(heat.max())
            self._heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros(n, np.float32)
        else:
            self._heat = np.zeros(n, np.float32)
        self._terms = {str(t): j for j, t in enumerate(self.vocabulary.tolist())}
        # The session similarity as fixed-width rows (see _padded), so a request reads its few
        # rows with one index; about the matrix's size again in memory.
        self._sim_pad = _padded(self.sim_indptr, self.sim_indices, self.sim_data, n)
        self._widen = self._heat * WIDEN_WEIGHT  # the trending row of items no part scores
        self._order = np.ascontiguousarray(self.trending_order, np.int32)  # the kernel's dtype
        warm()  # the ranking kernel compiled (or loaded from numba's cache) before any request
        ngram = int(self.meta.get("ngram_max", 1))
        from sklearn.feature_extraction.text import CountVectorizer

        # Only the analyzer (tokenising, lower-casing, n-grams as TfidfVectorizer's defaults);
        # nothing fitted, so it is safe to share between threads.
        self._analyze = CountVectorizer(ngram_range=(1, ngram)).build_analyzer()

    # -- build ----------------------------------------------------------------------------------
    @staticmethod
    def build(
        hybrid: Hybrid,
        top_n: int = 50,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Bundle:
        """Precompute everything the API serves from (see the module docstring). ``progress``
        is called as ``(step, done, total)``."""
        from recommend.components.content import Content
        from recommend.components.popularity import Trending
        from recommend.components.together import BoughtTogether
        from recommend.hybrid import ITEM_WEIGHTS, blend, normalise
        from recommend.precompute import BLOCK_CELLS, block_size, precompute_top, select_top

        tell = progress or (lambda step, done, total: None)
        started = time.perf_counter()
        if top_n < 1:
            raise ValueError("top_n must be at least 1")
        t = hybrid.train
        n_items, n_users = t.n_items, t.n_users
        width = min(top_n, max(n_items - 1, 1))

        # HOME lists: the blend for every user, blocks of users, training items excluded.
        step, steps = "precomputing lists", n_users + n_items  # shoppers, then products
        tell(step, 0, steps)
        tops = precompute_top(
            HomeBlend(hybrid),
            t.binary(),
            k=width,
            progress=lambda done, _total: tell(step, done, steps),
        )
        shoppers_s = time.perf_counter() - started
        u_items = tops.items
        u_scores = np.where(u_items >= 0, tops.scores, 0.0).astype(np.float32)
        best = u_scores[:, :1] if u_scores.shape[1] else np.zeros((n_users, 1), np.float32)
        u_scores = np.divide(u_scores, best, out=np.zeros_like(u_scores), where=best > 0).astype(
            np.float32
        )

        # Item parts: the hybrid's own components where it has them.
        knn: sp.csr_matrix | None = None
        lift: sp.csr_matrix | None = None
        content: Content | None = None
        heat: np.ndarray | None = None
        for name, c in hybrid.components.items():
            if name == "together" and isinstance(c, BoughtTogether):
                lift = c.lift
            elif name == "content" and isinstance(c, Content):
                content = c
            elif name in ("itemknn", "session") and isinstance(
                getattr(c, "sim", None), sp.csr_matrix
            ):
                knn = getattr(c, "sim")  # noqa: B009
            elif isinstance(c, Trending):
                heat = c.heat
        if knn is None:
            knn = hybrid.item_similarity()
        if lift is None:
            lift = BoughtTogether().fit(t).lift
        if content is None:
            content = Content().fit(t)
        if heat is None:
            heat = Trending().fit(t).heat
        knn = sp.csr_matrix(knn, dtype=np.float32)
        lift = sp.csr_matrix(lift, dtype=np.float32)
        vectors = sp.csr_matrix(content.vectors, dtype=np.float32)
        weights = dict(hybrid.weights.get("PRODUCT") or ITEM_WEIGHTS["PRODUCT"])

        size = block_size(n_items, BLOCK_CELLS // 4)
        sim_i = np.full((n_items, width), -1, np.int32)
        sim_s = np.zeros((n_items, width), np.float32)
        con_i = np.full((n_items, width), -1, np.int32)
        con_s = np.zeros((n_items, width), np.float32)
        for a in range(0, n_items, size):
            rows = np.arange(a, min(n_items, a + size))
            own = (np.arange(len(rows)), rows)
            cos = np.asarray((vectors[rows] @ vectors.T).toarray(), np.float32)
            parts = {
                "itemknn": normalise(knn[rows].toarray()),
                "together": normalise(lift[rows].toarray()),
                "content": normalise(cos),
            }
            mix = blend(parts, weights)
            del parts
            mix[own] = -np.inf
            cos[own] = -np.inf
            sim_i[rows], sim_s[rows] = _positive(*select_top(mix, width, overwrite=True))
            con_i[rows], con_s[rows] = _positive(*select_top(cos, width, overwrite=True))
            tell(step, n_users + int(rows[-1]) + 1, steps)
        tog_i, tog_s = _sparse_top(lift, width)
        session = _prune(knn, width)

        heat = np.asarray(heat, np.float32)
        pop = np.asarray(t.binary().sum(axis=0), np.float32).ravel()
        idx = np.arange(n_items)
        trending_order = np.lexsort((idx, -pop, -heat)).astype(np.int32)
        popular_order = np.lexsort((idx, -pop)).astype(np.int32)
        vec = getattr(content, "vectorizer", None)
        vocab = getattr(vec, "vocabulary_", None)
        if vec is not None and vocab:
            terms = np.empty(len(vocab), dtype=object)
            for term, j in vocab.items():
                terms[j] = term
            vocabulary = np.asarray(terms.tolist(), dtype=np.str_)
            idf = np.asarray(vec.idf_, np.float32)
            ngram_max = int(vec.ngram_range[1])
        else:
            vocabulary, idf, ngram_max = _empty(np.str_), _empty(np.float32), 1
            vectors = sp.csr_matrix((n_items, 0), dtype=np.float32)
        train = sp.csr_matrix(t.matrix)
        train.sort_indices()
        started_sources = time.perf_counter()
        sources = _top_sources(
            u_items,
            train.indptr,
            train.indices,
            _padded(session.indptr, session.indices, session.data, n_items),
            n_items,
        )
        sources_s = time.perf_counter() - started_sources
        cats = t.item_category or [""] * n_items
        tell(step, steps, steps)
        return Bundle(
            items=np.asarray([str(x) for x in t.items.tolist()], dtype=np.str_),
            users=np.asarray([str(x) for x in t.users.tolist()], dtype=np.str_),
            user_top_ids=u_items.astype(np.int32),
            user_top_scores=u_scores,
            similar_ids=sim_i,
            similar_scores=sim_s,
            together_ids=tog_i,
            together_scores=tog_s,
            content_ids=con_i,
            content_scores=con_s,
            trending=heat,
            popular=pop,
            trending_order=trending_order,
            popular_order=popular_order,
            sim_indptr=session.indptr.astype(np.int64),
            sim_indices=session.indices.astype(np.int32),
            sim_data=session.data.astype(np.float32),
            train_indptr=train.indptr.astype(np.int64),
            train_indices=train.indices.astype(np.int32),
            tfidf_indptr=vectors.indptr.astype(np.int64),
            tfidf_indices=vectors.indices.astype(np.int32),
            tfidf_data=vectors.data.astype(np.float32),
            vocabulary=vocabulary,
            idf=idf,
            item_category=np.asarray([str(c or "") for c in cats], dtype=np.str_),
            user_top_source=sources,
            meta={
                "format": FORMAT,
                "top_n": width,
                "ngram_max": ngram_max,
                "weights": {s: dict(w) for s, w in hybrid.weights.items()},
                "product_weights": weights,
                "build_seconds": {
                    "shoppers": round(shoppers_s, 3),
                    "products": round(time.perf_counter() - started - shoppers_s - sources_s, 3),
                    "sources": round(sources_s, 3),
                },
            },
        )

    # -- serialisation --------------------------------------------------------------------------
    def dumps(self, *, compress: bool = False) -> bytes:
        """``MAGIC``, the body's sha256 (hex) and a newline, then an ``.npz`` (uncompressed by
        default: see docs/benchmarks.md for the load time of both; :meth:`loads` reads either)."""
        buf = io.BytesIO()
        stored = {**ARRAYS, **OPTIONAL}
        arrays = {name: np.asarray(getattr(self, name), dtype=dt) for name, dt in stored.items()}
        arrays["meta"] = np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8)
        if compress:
            np.savez_compressed(buf, allow_pickle=False, **arrays)
        else:
            np.savez(buf, allow_pickle=False, **arrays)
        body = buf.getvalue()
        return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body

    @staticmethod
    def sha256_of(data: bytes) -> str:
        """The checksum a blob from :meth:`dumps` carries (what ``serving_sha256`` stores)."""
        return data[len(MAGIC) : len(MAGIC) + 64].decode()

    @staticmethod
    def loads(data: bytes) -> Bundle:
        """A bundle from :meth:`dumps`; anything else (truncated, corrupt, foreign, a blob whose
        arrays do not fit together) raises :class:`recommend.hybrid.ArtifactError`."""
        from recommend.hybrid import ArtifactError

        data = bytes(data) if not isinstance(data, bytes) else data
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 65:
            raise ArtifactError("not a Precis serving bundle")
        digest = data[len(MAGIC) : len(MAGIC) + 64].decode(errors="replace")
        body = memoryview(data)[len(MAGIC) + 65 :]
        if hashlib.sha256(body).hexdigest() != digest:
            raise ArtifactError("serving bundle is corrupt (checksum mismatch)")
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as z:
                arrays = {name: z[name] for name in (*ARRAYS, "meta")}
                arrays.update({name: z[name] for name in OPTIONAL if name in z.files})
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, UnicodeError) as exc:
            raise ArtifactError(f"serving bundle is unreadable: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ArtifactError("serving bundle of an unknown format")
        try:
            fields: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
            bundle = Bundle(meta=meta, **fields)
            bundle._check()
        except (ValueError, TypeError, KeyError) as exc:
            raise ArtifactError(f"serving bundle is inconsistent: {exc}") from exc
        return bundle

    def _check(self) -> None:
        """Shapes and index ranges, so no request can index out of bounds."""
        n, u = len(self.items), len(self.users)
        v = len(self.vocabulary)

        def ids(a: np.ndarray, bound: int, name: str) -> None:
            if a.size and (int(a.min()) < -1 or int(a.max()) >= bound):
                raise ValueError(f"{name} out of range")

        def csr(ptr: np.ndarray, ind: np.ndarray, rows: int, cols: int, name: str) -> None:
            if (
                len(ptr) != rows + 1
                or ptr[0] != 0
                or ptr[-1] != len(ind)
                or np.any(np.diff(ptr) < 0)
            ):
                raise ValueError(f"{name} pointers")
            if ind.size and (int(ind.min()) < 0 or int(ind.max()) >= cols):
                raise ValueError(f"{name} indices out of range")

        if len(self.item_index) != n or len(self.user_index) != u:
            raise ValueError("duplicate keys")
        for name, rows in (("user_top", u), ("similar", n), ("together", n), ("content", n)):
            a, s = getattr(self, f"{name}_ids"), getattr(self, f"{name}_scores")
            if a.ndim != 2 or a.shape[0] != rows or s.shape != a.shape:
                raise ValueError(f"{name} lists have the wrong shape")
            ids(a, n, name)
        for name in ("trending", "popular", "trending_order", "popular_order", "item_category"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has the wrong length")
        for name in ("trending_order", "popular_order"):
            if not np.array_equal(np.sort(getattr(self, name)), np.arange(n)):
                raise ValueError(f"{name} is not an order of the items")
        csr(self.sim_indptr, self.sim_indices, n, n, "session similarity")
        csr(self.train_indptr, self.train_indices, u, n, "training items")
        csr(self.tfidf_indptr, self.tfidf_indices, n, v, "tf-idf")
        if len(self.sim_data) != len(self.sim_indices) or len(self.tfidf_data) != len(
            self.tfidf_indices
        ):
            raise ValueError("sparse data lengths")
        if len(self.idf) != v:
            raise ValueError("idf length")
        src = self.user_top_source
        if src.size or src.ndim != 2:
            if src.shape != self.user_top_ids.shape or not np.issubdtype(src.dtype, np.integer):
                raise ValueError("user_top_source has the wrong shape")
            ids(src, n, "user_top_source")
            if np.any((self.user_top_ids < 0) & (src >= 0)):
                raise ValueError("user_top_source names a source for an empty slot")

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (the key dictionaries come on top: about 100 bytes a key)."""
        return int(sum(np.asarray(getattr(self, name)).nbytes for name in (*ARRAYS, *OPTIONAL)))

    @property
    def top_n(self) -> int:
        return int(self.meta.get("top_n") or self.user_top_ids.shape[1])

    # -- request time ---------------------------------------------------------------------------
    def rank(self, request: RankRequest, view: View) -> list[Ranked]:
        """At most ``request.k`` items (fewer when the view allows fewer; never an error), best
        first, none excluded, none in ``request.exclude``, none the product/cart/recent items
        themselves, diversity caps held where enough candidates allow. Personal (known user and
        ``personal``): precomputed list merged with session signals. Otherwise, and for unknown
        users: trending + content of recent items + session (cold start). PRODUCT/CART: item
        neighbours of the product / cart (plus personal re-weighting when personal).

        A request handles a few hundred entries (the shopper's list, a few similarity rows),
        where a numpy call costs one to a few microseconds whatever its size, so Python builds
        the inputs with a few numpy calls and one compiled call does the rest
        (:func:`recommend.kernels.rank_pool`): the parts are read as blocks of rows (the session
        similarity padded to fixed width once, at load); the view's filter and every exclusion
        are one boolean mask (``ok``, over the items plus the padding slot) that the candidates
        and the trending walk both read; the kernel sums every part per item, finds and widens
        the pool, scores, orders and diversifies it; sources are looked up only for the answered
        items, a personal item's from the bundle's precomputed ``user_top_source``
        (:meth:`_explain`).
        tests/recommend/test_rank_differential.py pins the answers."""
        n = len(self.items)
        self._view_ok(view)
        k = min(int(request.k), n)
        if k <= 0:
            return []
        index = self.item_index
        recent_idx, recent_w = self._recent(request.recent)
        product = index.get(request.product) if request.product is not None else None
        cart = [j for j in map(index.get, request.cart) if j is not None] if request.cart else []
        blocked = [j for j in map(index.get, request.exclude) if j is not None]
        blocked += cart
        if product is not None:
            blocked.append(product)
        user = self.user_index.get(request.user) if request.user is not None else None
        if not request.personal:
            user = None
        scenario = request.scenario if request.scenario in SCENARIOS else "HOME"

        # name -> (items, scores, source rows: None for "personal", explained from the history),
        # in blend order (a part's row in the score matrix, and the first part wins a tie).
        parts: dict[str, _Part] = {}
        rerank_only: set[str] = set()
        history: np.ndarray | None = None  # the shopper's training items, never answered (HOME)
        cold = False
        if recent_idx:
            parts["viewed"] = self._sim_rows(recent_idx, recent_w)
        if scenario == "PRODUCT":
            weights = PRODUCT_WEIGHTS
            if product is not None:
                rows = np.asarray([product], np.int64)
                parts["similar"] = self._lists(self.similar_ids, self.similar_scores, rows)
        elif scenario == "CART":
            tuned = self.meta.get("weights", {}).get("CART") or CART_ITEM_WEIGHTS
            weights = {**{n: float(tuned.get(n, 0.0)) for n in CART_ITEM_WEIGHTS}, **CART_WEIGHTS}
            if cart:
                rows = np.asarray(cart, np.int64)
                parts["together"] = self._lists(self.together_ids, self.together_scores, rows)
                parts["itemknn"] = self._sim_rows(rows, None)
                parts["content"] = self._lists(self.content_ids, self.content_scores, rows)
        elif user is not None:
            weights = HOME_WEIGHTS
            parts["personal"] = self._personal(user)
            lo, hi = self.train_indptr[user : user + 2].tolist()
            history = self.train_indices[lo:hi]
        else:
            weights = COLD_WEIGHTS
            cold = True
            if recent_idx:
                parts["content"] = self._lists(
                    self.content_ids, self.content_scores, recent_idx, recent_w
                )
        if scenario in ("PRODUCT", "CART") and user is not None:
            parts["personal"] = self._personal(user)
            rerank_only.add("personal")  # always the last part, so the finding parts lead

        # ok[i]: item i may be answered (the view allows it, nothing excludes it, not yet taken);
        # ok[n] (and ok[-1]), the padding of the parts' rows, never.
        ok = np.zeros(n + 1, dtype=bool)
        ok[:n] = view.allowed
        blocked += recent_idx
        if blocked:
            ok[blocked] = False
        if history is not None:
            ok[history] = False
        names = [p for p in parts if weights.get(p, 0.0) > 0]
        ids = [parts[x][0].ravel() for x in names]
        keys = np.concatenate(ids, dtype=np.int64) if ids else _NO_ITEMS
        vals = (
            np.concatenate([parts[x][1].ravel() for x in names], dtype=np.float64)
            if ids
            else _NO_SCORES
        )
        bounds = np.fromiter(accumulate((len(a) for a in ids), initial=0), np.int64, len(ids) + 1)
        items, scores, whys, _ = rank_pool(
            keys,
            vals,
            bounds,
            len(names) - len(rerank_only & set(names)),
            np.array([weights[x] for x in names], np.float32),
            ok,
            self._order,
            self._heat,
            self._widen,
            cold,
            np.float32(weights.get("trending", 0.0)),
            k,
            np.asarray(view.category, np.int32),
            np.asarray(view.brand, np.int32),
            diversity_cap(view.max_share, k),
            DIVERSITY_WINDOW * k,
        )
        chosen, rows = items.tolist(), whys.tolist()
        p = len(names)
        if p in rows:  # the trending row: "trending" if the item has heat, else "popular"
            heat = self.trending.take(chosen).tolist()
            labels = [
                names[why] if why < p else "trending" if h > 0 else "popular"
                for why, h in zip(rows, heat, strict=True)
            ]
        else:
            labels = [names[why] for why in rows]
        return self._explain(chosen, labels, scores.tolist(), parts, user, view)

    def similar_items(self, item: str, k: int, view: View) -> list[Ranked]:
        """The product's ``similar`` neighbours, then its ``content`` neighbours (reason
        "content") when those cannot fill ``k``; an unknown item gets none."""
        self._view_ok(view)
        j = self.item_index.get(item)
        k = min(int(k), len(self.items))
        if j is None or k <= 0:
            return []
        a_i, a_s = self.similar_ids[j], self.similar_scores[j]
        b_i, b_s = self.content_ids[j], self.content_scores[j]
        ids, labels, scores = _merge_fill([(a_i, a_s, "similar"), (b_i, b_s, "content")])
        src = self.items[j]
        return self._pick(ids, labels, scores, k, view, {j}, lambda _i, _r: str(src))

    def bought_together(self, items: Sequence[str], k: int, view: View) -> list[Ranked]:
        """Summed bought-together lift of the known ``items`` (unknown ones are ignored), the
        items themselves left out; source = the item that contributed most."""
        self._view_ok(view)
        idx = [j for j in (self.item_index.get(i) for i in items) if j is not None]
        k = min(int(k), len(self.items))
        if not idx or k <= 0:
            return []
        rows = np.asarray(idx, np.int64)
        block, scores, _ = self._lists(self.together_ids, self.together_scores, rows)
        keep = block.ravel() >= 0
        it, sc = block.ravel()[keep].astype(np.int64), scores.ravel()[keep]
        src = np.repeat(rows, block.shape[1])[keep]
        cand, total = _aggregate(it, sc)
        best = _best_source(it, sc, src, cand)
        return self._pick(
            cand,
            ["together"] * len(cand),
            total,
            k,
            view,
            set(idx),
            lambda i, _r: str(self.items[best[i]]) if i in best else None,
        )

    def trending_items(self, category_items: np.ndarray | None, k: int, view: View) -> list[Ranked]:
        """Trending overall, or among the items of a category (bool mask over items, the category
        and its sub-categories, built by the caller); falls back to popular when trending is
        empty."""
        self._view_ok(view)
        n = len(self.items)
        k = min(int(k), n)
        if k <= 0:
            return []
        ok = np.asarray(view.allowed, dtype=bool).copy()
        if category_items is not None:
            mask = np.asarray(category_items, dtype=bool)
            if mask.shape != (n,):
                raise ValueError(f"category_items must be a bool mask of {n} items")
            ok &= mask
        order, _ = self._walk(ok, DIVERSITY_WINDOW * k, 0)
        if not len(order):
            return []
        labels = np.where(self.trending[order] > 0, "trending", "popular").tolist()
        # Scores: the normalised heat; the list keeps the trending order (heat, then popularity).
        return self._pick(order, labels, self._heat[order], k, view, set(), None, presorted=True)

    def similar_to_text(self, text: str, k: int, view: View) -> list[Ranked]:
        """Cold start for a product the model has never seen: items with the most similar text."""
        self._view_ok(view)
        k = min(int(k), len(self.items))
        q = self._tfidf(text)
        if q is None or k <= 0:
            return []
        cols, vals = q
        m = sp.csr_matrix(
            (self.tfidf_data, self.tfidf_indices, self.tfidf_indptr),
            shape=(len(self.items), len(self.vocabulary)),
        )
        qv = np.zeros(len(self.vocabulary), np.float32)
        qv[cols] = vals
        s = np.asarray(m @ qv, np.float32).ravel()
        cand = np.flatnonzero(s > 0)
        return self._pick(cand, ["content"] * len(cand), s[cand], k, view, set(), None)

    # -- helpers --------------------------------------------------------------------------------
    def _view_ok(self, view: View) -> None:
        n = len(self.items)
        for name in ("allowed", "category", "brand"):
            a = getattr(view, name)
            if getattr(a, "shape", None) != (n,) and np.shape(a) != (n,):
                raise ValueError(f"View.{name} must have one entry per bundle item ({n})")

    def _recent(self, recent: Sequence[Recent]) -> tuple[list[int], np.ndarray]:
        """Known recent items (newest first, each once: its newest event) and their weights
        (float32)."""
        idx: list[int] = []
        w: list[float] = []
        index = self.item_index
        for pos, r in enumerate(recent[:MAX_RECENT]):
            j = index.get(r.item)
            if j is None or j in idx:
                continue
            age = float(r.age_seconds)
            weight = KIND_WEIGHTS.get(r.kind, 1.0) * _DECAY[pos]
            if age > 0.0 and math.isfinite(age):
                weight *= 0.5 ** (age / RECENT_HALF_LIFE)
            idx.append(j)
            w.append(weight)
        return idx, np.asarray(w, np.float32)

    def _sim_rows(self, rows: Sequence[int] | np.ndarray, weights: np.ndarray | None) -> _Part:
        """The session similarity rows of ``rows`` as a rows x width block (padded with item n
        and 0), each row times its weight (float32); ``weights`` None: the values as stored."""
        r = np.asarray(rows, np.intp)
        if self._sim_pad is not None:
            ids, vals = self._sim_pad[0][r], self._sim_pad[1][r]
        else:
            ids, vals = _pad_rows(self.sim_indptr, self.sim_indices, self.sim_data, r)
        if weights is not None:
            vals *= weights[:, None]
        return ids, vals, r

    @staticmethod
    def _lists(
        ids: np.ndarray,
        scores: np.ndarray,
        rows: Sequence[int] | np.ndarray,
        weights: np.ndarray | None = None,
    ) -> _Part:
        """Fixed-width neighbour lists of ``rows`` as a block (empty slots: item -1, score 0),
        each row times its weight (float32) when ``weights`` are given."""
        r = np.asarray(rows, np.intp)
        sc = scores[r]
        return ids[r], sc * weights[:, None] if weights is not None else sc, r

    def _personal(self, user: int) -> _Part:
        """The shopper's precomputed list (one row); explained from the history."""
        return self.user_top_ids[user], self.user_top_scores[user], None

    def _walk(self, ok: np.ndarray, need: int, start: int) -> tuple[np.ndarray, int]:
        """The next ``need`` items of the trending order from position ``start`` that ``ok`` (a
        bool mask over the items) allows, and the position after the last one taken."""
        n = len(self.trending_order)
        if need <= 0 or start >= n:
            return _empty(np.int64), start
        got: list[np.ndarray] = []
        have = 0
        pos = start
        chunk = max(2 * need, 64)
        while have < need and pos < n:
            part = self.trending_order[pos : pos + chunk]
            hit = ok[part].nonzero()[0]
            if have + len(hit) >= need:
                hit = hit[: need - have]
                got.append(part[hit])
                pos += int(hit[-1]) + 1
                have = need
                break
            got.append(part[hit])
            have += len(hit)
            pos += len(part)
            chunk *= 4
        out = np.concatenate(got) if len(got) > 1 else got[0] if got else _empty(np.int64)
        return out.astype(np.int64), pos

    def _history_source(self, user: int, want: list[int]) -> dict[int, int]:
        """For each item of ``want``: the shopper's training item most similar to it (ties: the
        lower item index), looked up in the item's own similarity row (cosine co-occurrence is
        symmetric before pruning), which is ~50 entries instead of the rows of the whole history.
        The rows are read as one padded ``len(want) x longest row`` block, so a handful of numpy
        calls whatever the number of items."""
        hist = self.train_indices[self.train_indptr[user] : self.train_indptr[user + 1]]
        n, nnz = len(self.items), len(self.sim_indices)
        if not len(hist) or not nnz or not want:
            return {}
        rows = np.asarray(want, np.int64)
        start = self.sim_indptr[rows]
        lens = self.sim_indptr[rows + 1] - start
        sizes = lens.tolist()
        shortest, width = min(sizes), max(sizes)
        if width <= 0:
            return {}
        at = start[:, None] + np.arange(width)
        np.minimum(at, nnz - 1, out=at)
        near = self.sim_indices[at]
        in_history = np.zeros(n, dtype=bool)
        in_history[hist] = True
        mine = in_history[near]
        if shortest < width:  # a shorter row's padding is not its own
            mine &= np.arange(width) < lens[:, None]
        sc = self.sim_data[at]
        sc[~mine] = -np.inf
        top = sc.max(axis=1)
        near[sc != top[:, None]] = n  # not the best: out of the minimum
        best = near.min(axis=1)
        return {
            i: b for i, b, t in zip(want, best.tolist(), top.tolist(), strict=True) if t > -math.inf
        }

    def _personal_source(self, user: int, want: list[int]) -> dict[int, int]:
        """:meth:`_history_source` of the shopper's listed items read from ``user_top_source``
        (precomputed by :meth:`build`); computed for the others, and for all with a bundle built
        before that array existed."""
        if not self.user_top_source.size:
            return self._history_source(user, want)
        listed = self.user_top_ids[user].tolist()
        sources = self.user_top_source[user].tolist()
        out: dict[int, int] = {}
        rest: list[int] = []
        for i in want:
            if i not in listed:
                rest.append(i)
            elif (s := sources[listed.index(i)]) >= 0:
                out[i] = s
        if rest:
            out.update(self._history_source(user, rest))
        return out

    def _explain(
        self,
        chosen: list[int],
        reasons: list[str],
        scores: list[float],
        parts: dict[str, _Part],
        user: int | None,
        view: View,
    ) -> list[Ranked]:
        """The answer as :class:`Ranked`, each with the item that explains it, looked up for the
        answered items only: for a part with source rows (a recent item, the product, a cart
        item) the row whose entry for the item is largest (ties: the lower item index); for
        "personal" the shopper's training item most similar to it."""
        by_part: dict[str, list[int]] = {}  # the answered items of each reason, in one pass
        for i, r in zip(chosen, reasons, strict=True):
            by_part.setdefault(r, []).append(i)
        source: dict[int, int] = {}
        for name, want in by_part.items():
            got = parts.get(name)
            if name == "personal" and user is not None:
                source.update(self._personal_source(user, want))
            elif got is not None and got[2] is not None:
                source.update(_row_sources(*got, want))
        keys = self._keys
        cats = np.asarray(view.category)[chosen].tolist() if chosen else []
        # Built in the loop rather than by :func:`_ranked` (the same objects): one call fewer an
        # item, ten an answer.
        new, out = object.__new__, []
        for i, r, s, c in zip(chosen, reasons, scores, cats, strict=True):
            j = source.get(i)
            ranked: Ranked = new(Ranked)
            ranked.__dict__.update(
                item=keys[i],
                score=s,
                reason=PART_REASONS.get(r, r),
                source=None if j is None else keys[j],
                category=c,
            )
            out.append(ranked)
        return out

    def _pick(
        self,
        ids: np.ndarray,
        labels: list[str],
        scores: np.ndarray,
        k: int,
        view: View,
        drop: set[int],
        source: Callable[[int, str], str | None] | None,
        *,
        presorted: bool = False,
    ) -> list[Ranked]:
        """Filter by the view and ``drop``, diversify, best first (``presorted``: ``ids`` are
        already in answer order)."""
        ids = np.asarray(ids, np.int64)
        if not len(ids):
            return []
        ok = np.asarray(view.allowed, dtype=bool)[ids]
        if drop:
            ok &= ~np.isin(ids, np.fromiter(drop, np.int64))
        keep = np.flatnonzero(ok)
        ids, scores = ids[keep], np.asarray(scores, np.float32)[keep]
        labels = [labels[i] for i in keep.tolist()]
        if presorted:
            order = np.arange(len(ids))
            chosen, _ = _diversify(order, k, view, ids)
            chosen = np.sort(chosen)
        else:
            order = np.lexsort((ids, -scores))
            chosen, _ = _diversify(order, k, view, ids)
            chosen = chosen[np.lexsort((ids[chosen], -scores[chosen]))]
        cat = view.category
        return [
            Ranked(
                item=str(self.items[ids[c]]),
                score=float(scores[c]),
                reason=labels[c],
                source=source(int(ids[c]), labels[c]) if source else None,
                category=int(cat[ids[c]]),
            )
            for c in chosen.tolist()
        ]

    def _tfidf(self, text: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The L2-normalised TF-IDF vector of ``text`` (sublinear tf, the trained idf), as
        (columns, values); None when no word of it is known."""
        if not len(self.vocabulary) or not isinstance(text, str) or not text.strip():
            return None
        counts: dict[int, int] = {}
        for term in self._analyze(text[:100_000]):
            j = self._terms.get(term)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return None
        cols = np.fromiter(counts.keys(), np.int64, len(counts))
        tf = np.fromiter(counts.values(), np.float64, len(counts))
        vals = (np.log(tf) + 1.0) * self.idf[cols]
        norm = float(np.sqrt((vals**2).sum()))
        if norm <= 0:
            return None
        return cols, (vals / norm).astype(np.float32)


# -- module helpers ---------------------------------------------------------------------------------


class HomeBlend:
    """``hybrid.scores(users, "HOME")`` with fewer passes over the dense block: each component's
    scores are normalised in place (training items NaN, min and max by ``fmin``/``fmax``
    reductions) and added to one total, instead of a normalised copy per component. The same
    float32 operations in the same order as :func:`recommend.hybrid.normalise` and
    :func:`recommend.hybrid.blend`, so the same numbers for every item a list can hold (training
    items, which lists never hold, are NaN here and 0 there)."""

    def __init__(self, hybrid: Hybrid, scenario: str = "HOME") -> None:
        self.hybrid = hybrid
        self.weights = hybrid.weights.get(scenario) or hybrid.weights["HOME"]

    def scores(self, users: np.ndarray) -> np.ndarray:
        seen = self.hybrid.train.binary()[users]
        rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
        total: np.ndarray | None = None
        for name, w in self.weights.items():  # blend's order
            c = self.hybrid.components.get(name)
            if w == 0 or c is None:
                continue
            s = np.asarray(c.scores(users))
            if s.dtype != np.float32 or not s.flags.writeable or s.base is not None:
                s = np.array(s, dtype=np.float32)
            if not np.isfinite(s).all():
                s[~np.isfinite(s)] = np.nan
            s[rows, seen.indices] = np.nan
            with np.errstate(invalid="ignore"):
                lo = np.fmin.reduce(s, axis=1)
                hi = np.fmax.reduce(s, axis=1)
                span = hi - lo
            ok = np.isfinite(span) & (span > 0)
            s -= np.where(ok, lo, np.float32(0.0))[:, None]
            s /= np.where(ok, span, np.float32(1.0))[:, None]
            s[~ok] = 0.0
            s *= np.float32(w)
            if total is None:
                total = s
            else:
                total += s
        if total is None:
            return np.zeros((len(users), self.hybrid.train.n_items), np.float32)
        return total


def _ranked(item: str, score: float, reason: str, source: str | None, category: int) -> Ranked:
    """``Ranked(item, score, reason, source, category)`` without the frozen dataclass's
    ``__init__`` (an ``object.__setattr__`` a field): the same object, in a third of the time,
    for the items of every answer."""
    r: Ranked = object.__new__(Ranked)
    r.__dict__.update(item=item, score=score, reason=reason, source=source, category=category)
    return r


def _positive(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top lists with slots of no positive score emptied (item -1, score 0)."""
    bad = ~(scores > 0) | (ids < 0)
    ids = ids.copy()
    scores = scores.copy()
    ids[bad] = -1
    scores[bad] = 0.0
    return ids, scores


def _sparse_top(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest positive entries (ties by column), fixed width, -1 / 0 padded;
    vectorised over all rows (one lexsort)."""
    m = sp.csr_matrix(m, dtype=np.float32)
    n_rows = m.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(m.indptr))
    pos = m.data > 0
    r, c, v = rows[pos], m.indices[pos], m.data[pos]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    counts = np.bincount(r, minlength=n_rows)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(r)) - first[r]
    keep = rank < k
    ids = np.full((n_rows, k), -1, np.int32)
    scores = np.zeros((n_rows, k), np.float32)
    ids[r[keep], rank[keep]] = c[keep]
    scores[r[keep], rank[keep]] = v[keep]
    return ids, scores


def _prune(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """A sparse matrix with each row's ``k`` largest positive entries, columns sorted."""
    ids, scores = _sparse_top(m, k)
    ok = ids >= 0
    rows = np.repeat(np.arange(m.shape[0]), ok.sum(axis=1))
    out = sp.csr_matrix((scores[ok], (rows, ids[ok])), shape=m.shape, dtype=np.float32)
    out.sort_indices()
    return out


def _aggregate(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores summed per distinct item (sorted items), divided by their maximum (so in [0, 1]);
    no positive maximum: all 0."""
    if not len(items):
        return _empty(np.int64), _empty(np.float32)
    order = np.argsort(items, kind="stable")
    it = items[order]
    first = np.empty(len(it), dtype=bool)
    first[0] = True
    np.not_equal(it[1:], it[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    u = it[starts]
    s = np.add.reduceat(np.asarray(scores, np.float64)[order], starts).astype(np.float32)
    top = float(s.max())
    if top > 0:
        s /= np.float32(top)
        np.maximum(s, 0.0, out=s)
    else:
        s[:] = 0.0
    return u.astype(np.int64), s


def _padded(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """A CSR matrix's rows as fixed-width (n x longest row) blocks of columns (padding: n) and
    values (padding: 0), so a request reads a few rows with one index each (the session
    similarity is pruned to ``top_n`` a row, so this is about its own size again). None when the
    rows are too uneven for that (more than four times the entries) or the pointers do not fit
    (:meth:`Bundle._check` refuses such a bundle)."""
    lens = np.diff(indptr)
    if (
        n == 0
        or len(indptr) != n + 1
        or indptr[0] != 0
        or indptr[-1] != len(indices)
        or len(data) != len(indices)
        or lens.min() < 0
    ):
        return None
    width = int(lens.max())
    if n * width > 4 * len(indices) + 64 * n:
        return None
    rows = np.repeat(np.arange(n), lens)
    at = np.arange(len(indices)) - indptr[rows]
    ids = np.full((n, width), n, np.int32)
    vals = np.zeros((n, width), np.float32)
    ids[rows, at] = indices
    vals[rows, at] = data
    return ids, vals


def _pad_rows(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_padded` for a few rows, read per request (a bundle whose rows are too uneven)."""
    n = len(indptr) - 1
    start = indptr[rows]
    lens = indptr[rows + 1] - start
    width = int(lens.max()) if len(rows) else 0
    inside = np.arange(width) < lens[:, None]
    at = np.where(inside, start[:, None] + np.arange(width), 0)
    if not len(indices):
        return np.full(at.shape, n, np.int64), np.zeros(at.shape, np.float32)
    return np.where(inside, indices[at], n), np.where(inside, data[at], np.float32(0.0))


def _top_sources(
    top_ids: np.ndarray,
    train_indptr: np.ndarray,
    train_indices: np.ndarray,
    sim: tuple[np.ndarray, np.ndarray] | None,
    n: int,
    block: int = 500,
) -> np.ndarray:
    """For every shopper's listed item, the training item of the shopper's that is most similar
    to it in the session similarity (ties: the lower item index; -1 none), i.e.
    :meth:`Bundle._history_source` of every list at once, in blocks of shoppers: the listed
    items' padded similarity rows (``sim``, from :func:`_padded`) looked up in a dense
    shoppers x items history mask. It is what "because you viewed X" names for a personal item,
    read per request instead of computed (about a tenth of a request's cost before)."""
    users, width = top_ids.shape
    out = np.full((users, width), -1, np.int32)
    if sim is None or not sim[0].shape[1] or not users or not width:
        return out
    near_ids, near_vals = sim
    for a in range(0, users, block):
        b = min(users, a + block)
        lo, hi = int(train_indptr[a]), int(train_indptr[b])
        seen = np.zeros((b - a, n + 1), dtype=bool)
        seen[
            np.repeat(np.arange(b - a), np.diff(train_indptr[a : b + 1])), train_indices[lo:hi]
        ] = True
        top = top_ids[a:b]
        near = near_ids[top]  # (users, width, row width); a -1 slot reads the last row, masked
        sc = near_vals[top]
        mine = seen[np.arange(b - a)[:, None, None], near]
        mine &= (top >= 0)[:, :, None]
        sc[~mine] = -np.inf
        best = sc.max(axis=2)
        near[sc != best[:, :, None]] = n
        pick = near.min(axis=2)
        out[a:b] = np.where(best > -np.inf, pick, -1)
    return out


def _row_sources(
    ids: np.ndarray, scores: np.ndarray, rows: np.ndarray | None, want: list[int]
) -> dict[int, int]:
    """For each item of ``want``: the row (of a part's block) whose entry for it is largest, as
    that row's source item (ties: the lower one); items no row holds are left out (compiled:
    :func:`recommend.kernels.row_sources`)."""
    if rows is None or not want or not ids.size:
        return {}
    got = row_sources(
        np.asarray(ids if ids.ndim == 2 else ids[None, :], np.int32),
        np.asarray(scores if scores.ndim == 2 else scores[None, :], np.float32),
        np.asarray(rows, np.int64),
        np.asarray(want, np.int64),
    ).tolist()
    return {i: s for i, s in zip(want, got, strict=True) if s >= 0}


def _uniq(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its hashing set-up: faster on the few hundred
    values a request handles)."""
    a = np.sort(values)
    if len(a) < 2:
        return a
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted second array, by binary search (cheap for small arrays)."""
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    i = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return np.asarray(sorted_set[i] == values)


def _best_source(
    items: np.ndarray, contrib: np.ndarray, src: np.ndarray, targets: np.ndarray
) -> dict[int, int]:
    """For each target item: the source row whose entry for it is largest (ties: lower row)."""
    if not len(items) or not len(targets):
        return {}
    hit = _member(items, _uniq(targets))
    it, sc, so = items[hit], contrib[hit], np.asarray(src)[hit]
    if not len(it):
        return {}
    order = np.lexsort((so, -sc, it))
    it, so = it[order], so[order]
    first = np.ones(len(it), dtype=bool)
    first[1:] = it[1:] != it[:-1]
    return dict(zip(it[first].tolist(), so[first].tolist(), strict=True))


def _merge_fill(
    lists: list[tuple[np.ndarray, np.ndarray, str]],
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The first list's items best first, then each next list's items not yet in, scored below
    every earlier one (so order is kept and the reason names the list an item came from)."""
    ids: list[int] = []
    labels: list[str] = []
    scores: list[float] = []
    seen: set[int] = set()
    floor = None
    for it, sc, label in lists:
        ok = it >= 0
        it, sc = it[ok], sc[ok]
        top = float(sc.max()) if len(sc) else 0.0
        for i, s in zip(it.tolist(), sc.tolist(), strict=True):
            if i in seen:
                continue
            val = s / top if top > 0 else 0.0
            if floor is not None:
                val = floor * 0.5 * val  # below the previous list's weakest
            ids.append(i)
            labels.append(label)
            scores.append(val)
            seen.add(i)
        if scores:
            floor = min(scores)
    return np.asarray(ids, np.int64), labels, np.asarray(scores, np.float32)


def _diversify(order: np.ndarray, k: int, view: View, pool: np.ndarray) -> tuple[np.ndarray, bool]:
    """Greedy: walk ``order`` (positions into ``pool``, best first) taking an item unless its
    category or brand already has ``ceil(max_share * k)`` items; when that leaves fewer than ``k``,
    fill from the skipped ones in order. Returns the positions taken and whether the caps had to
    be relaxed. Unknown codes (-1) are not capped."""
    share = float(view.max_share)
    if not math.isfinite(share) or share >= 1.0:
        return order[:k], False
    cap = max(1, math.ceil(max(share, 0.0) * k))
    window = order[: DIVERSITY_WINDOW * k]
    per_cat: dict[int, int] = {}
    per_brand: dict[int, int] = {}
    taken: list[int] = []
    skipped: list[int] = []
    start, step = 0, 2 * k  # the first 2k usually settle it; then the rest of the window at once
    while len(taken) < k and start < len(window):
        part = window[start : start + step]
        items = pool[part]
        cats, brands = view.category[items].tolist(), view.brand[items].tolist()
        for o, c, b in zip(part.tolist(), cats, brands, strict=True):
            if (c >= 0 and per_cat.get(c, 0) >= cap) or (b >= 0 and per_brand.get(b, 0) >= cap):
                skipped.append(o)
                continue
            taken.append(o)
            if c >= 0:
                per_cat[c] = per_cat.get(c, 0) + 1
            if b >= 0:
                per_brand[b] = per_brand.get(b, 0) + 1
            if len(taken) == k:
                break
        start += len(part)
        step = len(window)
    relaxed = len(taken) < k and bool(skipped)
    if relaxed:
        taken.extend(skipped[: k - len(taken)])
    return np.asarray(taken, np.int64), relaxed


__all__ = [
    "REASONS",
    "SCENARIOS",
    "Bundle",
    "RankRequest",
    "Ranked",
    "Recent",
    "View",
]
