"""Precomputed top-N lists: every shopper's best ``k`` items, scored in blocks of users (one
matrix product per block, never ``predict`` in a loop), seen items excluded, the ``k`` best kept with
``argpartition`` and stored compactly (int32 item indices, float32 scores).

Order within a list: score descending, ties by lower item index (item id order). Which of several
items tied exactly at the ``k``-th place gets in is ``argpartition``'s choice (deterministic for the
same scores, not necessarily the lowest index; :func:`recommend.protocol.top_k` resolves that tie
too, at the price of a full pass over every row, which evaluation needs and a precompute does not).
Slots a user cannot fill (every other item seen, or scores that are not numbers) hold item -1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

# Dense score cells held at once: users per block = BLOCK_CELLS // n_items (80 MB of float32).
BLOCK_CELLS = 20_000_000


class Scorer(Protocol):
    def scores(self, users: np.ndarray) -> np.ndarray: ...


@dataclass
class TopLists:
    """``items[r]`` are the best item indices of ``users[r]``, best first (-1: empty slot)."""

    users: np.ndarray  # int64 user rows
    items: np.ndarray  # int32, len(users) x k
    scores: np.ndarray  # float32, len(users) x k (-inf in empty slots)
    seconds: dict[str, float] = field(default_factory=dict)  # "score", "select"

    @property
    def nbytes(self) -> int:
        return int(self.items.nbytes + self.scores.nbytes)


def block_size(n_items: int, cells: int = BLOCK_CELLS) -> int:
    return max(1, cells // max(n_items, 1))


def exclude_seen(scores: np.ndarray, seen: sp.csr_matrix | None) -> None:
    """Set the scores of each row's seen items (the stored entries of the same row of ``seen``)
    to -inf, in place."""
    if seen is None or seen.nnz == 0:
        return
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf


def select_top(
    scores: np.ndarray, k: int, *, overwrite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of ``scores`` (float, 2-D; NaN counts as -inf): int32 indices
    and float32 scores, best first, ties by lower index; -1 / -inf where a row has fewer than
    ``k`` finite scores. With ``overwrite`` the scores are negated in place (no copy).

    The selection is ``argpartition`` of the negated scores at ``k - 1``: partitioning at
    ``n - k`` of the scores themselves is up to 20 times slower when most scores are equal (the
    zeros of a sparse item-item product), and NaN, which sorts last, is never picked before a
    number."""
    n_rows, n = scores.shape
    k = min(k, n)
    if k <= 0:
        return np.zeros((n_rows, 0), np.int32), np.zeros((n_rows, 0), np.float32)
    neg = np.negative(scores, out=scores) if overwrite else np.negative(scores)
    part = np.argpartition(neg, k - 1, axis=1)[:, :k]
    nvals = np.take_along_axis(neg, part, axis=1)
    order = np.lexsort((part, nvals), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int32)
    out = np.negative(np.take_along_axis(nvals, order, axis=1)).astype(np.float32)
    empty = np.isnan(out) | np.isneginf(out)
    ids[empty] = -1
    out[empty] = -np.inf
    return ids, out


def precompute_top(
    model: Scorer,
    seen: sp.csr_matrix | None,
    *,
    k: int = 50,
    users: np.ndarray | None = None,
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TopLists:
    """Top-``k`` lists of ``users`` (default: every row of ``seen``) from ``model.scores`` (a
    component or a :class:`~recommend.hybrid.Hybrid`), excluding each user's items in ``seen``
    (users x items, e.g. ``train.binary()``). ``batch`` users are scored at once (default: 80 MB
    of scores)."""
    if users is None:
        if seen is None:
            raise ValueError("precompute_top needs users or a seen matrix")
        users = np.arange(seen.shape[0], dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    seen_csr = sp.csr_matrix(seen) if seen is not None else None
    n_items = seen_csr.shape[1] if seen_csr is not None else None
    ids_out: np.ndarray | None = None
    vals_out: np.ndarray | None = None
    t_score = t_select = 0.0
    size = batch
    done = 0
    while done < len(users):
        t0 = time.perf_counter()
        if size is None:
            probe = np.asarray(model.scores(users[done : done + 1]))
            n_items = probe.shape[1]
            size = block_size(n_items)
        block = users[done : done + size]
        s = np.asarray(model.scores(block))
        if s.dtype not in (np.float32, np.float64) or not s.flags.writeable:
            s = np.array(s, dtype=np.float32)
        t1 = time.perf_counter()
        exclude_seen(s, seen_csr[block] if seen_csr is not None else None)
        ids, vals = select_top(s, k, overwrite=True)
        if ids_out is None or vals_out is None:
            ids_out = np.empty((len(users), ids.shape[1]), np.int32)
            vals_out = np.empty((len(users), ids.shape[1]), np.float32)
        ids_out[done : done + len(block)] = ids
        vals_out[done : done + len(block)] = vals
        t2 = time.perf_counter()
        t_score += t1 - t0
        t_select += t2 - t1
        done += len(block)
        if progress:
            progress(done, len(users))
    if ids_out is None or vals_out is None:
        width = min(k, n_items or 0)
        ids_out = np.empty((0, width), np.int32)
        vals_out = np.empty((0, width), np.float32)
    return TopLists(users, ids_out, vals_out, {"score": t_score, "select": t_select})


__all__ = ["BLOCK_CELLS", "TopLists", "block_size", "exclude_seen", "precompute_top", "select_top"]
