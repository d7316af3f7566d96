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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

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


@dataclass
class Bundle:
    items: np.ndarray  # str item keys
    users: np.ndarray  # str user keys
    item_index: dict[str, int] = field(default_factory=dict)
    user_index: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def build(hybrid: Hybrid, top_n: int = 50) -> Bundle:
        raise NotImplementedError

    def dumps(self) -> bytes:
        raise NotImplementedError

    @staticmethod
    def loads(data: bytes) -> Bundle:
        raise NotImplementedError

    def rank(self, request: RankRequest, view: View) -> list[Ranked]:
        """At most ``request.k`` items (fewer when the view allows fewer; never an error), best
        first, none excluded, none in ``request.exclude``, none the product/cart/recent items
        themselves, diversity caps held where enough candidates allow. Personal (known user and
        ``personal``): precomputed list merged with session signals. Otherwise, and for unknown
        users: trending + content of recent items + session (cold start). PRODUCT/CART: item
        neighbours of the product / cart (plus personal re-weighting when personal)."""
        raise NotImplementedError

    def similar_items(self, item: str, k: int, view: View) -> list[Ranked]:
        raise NotImplementedError

    def bought_together(self, items: Sequence[str], k: int, view: View) -> list[Ranked]:
        raise NotImplementedError

    def trending_items(self, category_items: np.ndarray | None, k: int, view: View) -> list[Ranked]:
        """Trending overall, or among the items of a category (bool mask over items, the category
        and its sub-categories, built by the caller); falls back to popular when trending is
        empty."""
        raise NotImplementedError

    def similar_to_text(self, text: str, k: int, view: View) -> list[Ranked]:
        """Cold start for a product the model has never seen: items with the most similar text."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        raise NotImplementedError
