"""Compiled (numba) request-time steps of :meth:`recommend.serving.Bundle.rank`.

A request handles a few hundred entries; as numpy calls (one to two microseconds each whatever
their size) the merge-score-order step cost about 75 calls a request. Here it is one call over
plain arrays: the parts' entries summed per item, the candidate pool found (and widened along
the trending order), scored, ordered and diversified, with the same float32 operations in the
same order as the numpy code it replaces, so the answers are the same
(tests/recommend/test_rank_differential.py).

``cache=True`` keeps the machine code in ``__pycache__`` beside this file (or under
``NUMBA_CACHE_DIR``); :func:`warm` compiles or loads it when a bundle loads, so no request pays
for it. Every argument has one dtype (int64 / float32 / float64 / bool arrays, int64 and float32
scalars), so one compilation serves every request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

_INF32 = np.float32(np.inf)
# Whether the machine code is kept on disk: False when numba finds no writable cache directory
# (the package's __pycache__, NUMBA_CACHE_DIR, the user's cache), where it would refuse
# ``cache=True`` at import; the kernels are then compiled in memory when the first bundle loads.
CACHED = True


def _compiled(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled on first call (nopython, releasing the GIL), cached on disk if possible."""
    global CACHED
    if CACHED:
        try:
            return numba.njit(cache=True, nogil=True)(fn)
        except RuntimeError:  # "no locator available": nowhere writable to keep the cache
            CACHED = False
    return numba.njit(nogil=True)(fn)


@_compiled
def _walk(
    order: np.ndarray, ok: np.ndarray, need: int, start: int
) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    """The next ``need`` items of ``order`` from position ``start`` that ``ok`` allows, and the
    position after the last one taken (``len(order)`` when it ran out)."""
    n = len(order)
    out = np.empty(max(need, 0), np.int64)
    if need <= 0 or start >= n:
        return out[:0], start
    have = 0
    pos = start
    while pos < n:
        i = order[pos]
        pos += 1
        if ok[i]:
            out[have] = i
            have += 1
            if have == need:
                break
    return out[:have], pos


@_compiled
def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Sorted distinct values of ``a`` and ``b``."""
    both = np.sort(np.concatenate((a, b)))
    out = np.empty(len(both), np.int64)
    m = 0
    for j in range(len(both)):
        if m == 0 or both[j] != out[m - 1]:
            out[m] = both[j]
            m += 1
    return out[:m]


@_compiled
def _score(
    pool: np.ndarray,
    slot: np.ndarray,
    known: np.ndarray,
    u: int,
    sums: np.ndarray,
    top: np.ndarray,
    w: np.ndarray,
    heat: np.ndarray,
    widen: np.ndarray,
    cold: bool,
    trend_w: np.float32,
    k: int,
    category: np.ndarray,
    brand: np.ndarray,
    cap: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    """``Bundle._finish`` over a sorted pool: each part's row (its float32 sum / its largest, at
    least 0, times its weight), the trending row, the total (rows added in order, then the
    trending row), ordered best first (ties: pool order), diversified; (items, scores, reason
    rows, relaxed)."""
    p = len(w)
    size = len(pool)
    mat = np.zeros((p + 1, size), np.float32)
    total = np.zeros(size, np.float32)
    for c in range(size):
        i = pool[c]
        q = slot[i]
        listed = q >= 0 and q < u and known[q] == i
        for j in range(p):
            s = np.float32(sums[j, q]) if listed else np.float32(0.0)
            x = np.float32(s / top[j])
            if not x > np.float32(0.0):
                x = np.float32(0.0)
            x = np.float32(x * w[j])
            mat[j, c] = x
            if j == 0:
                total[c] = x
            else:
                total[c] = np.float32(total[c] + x)
    for c in range(size):
        i = pool[c]
        if cold:
            t = np.float32(heat[i] * trend_w)
        elif total[c] > np.float32(0.0):
            t = np.float32(0.0)
        else:
            t = widen[i]
        mat[p, c] = t
        total[c] = np.float32(total[c] + t)
    order = np.argsort(-total, kind="mergesort")
    taken = np.empty(k, np.int64)
    got = 0
    relaxed = False
    if cap < 0:
        got = min(k, size)
        taken[:got] = order[:got]
    else:
        window = min(size, window)
        skipped = np.empty(window, np.int64)
        n_skip = 0
        cats = np.empty(k, np.int64)  # codes counted so far and their counts
        cat_n = np.zeros(k, np.int64)
        n_cats = 0
        brands = np.empty(k, np.int64)
        brand_n = np.zeros(k, np.int64)
        n_brands = 0
        for pos in range(window):
            o = order[pos]
            c = category[pool[o]]
            b = brand[pool[o]]
            full = False
            ci = -1
            if c >= 0:
                for q in range(n_cats):
                    if cats[q] == c:
                        ci = q
                        full = cat_n[q] >= cap
                        break
            bi = -1
            if b >= 0 and not full:
                for q in range(n_brands):
                    if brands[q] == b:
                        bi = q
                        full = brand_n[q] >= cap
                        break
            if full:
                skipped[n_skip] = o
                n_skip += 1
                continue
            taken[got] = o
            got += 1
            if got == k:
                break
            if c >= 0:
                if ci < 0:
                    ci = n_cats
                    cats[ci] = c
                    n_cats += 1
                cat_n[ci] += 1
            if b >= 0:
                if bi < 0:
                    for q in range(n_brands):
                        if brands[q] == b:
                            bi = q
                            break
                if bi < 0:
                    bi = n_brands
                    brands[bi] = b
                    n_brands += 1
                brand_n[bi] += 1
        relaxed = got < k and n_skip > 0
        if relaxed:
            more = min(k - got, n_skip)
            taken[got : got + more] = skipped[:more]
            got += more
    chosen = taken[:got]
    out_items = np.empty(got, np.int64)
    out_scores = np.empty(got, np.float32)
    for g in range(got):
        out_items[g] = pool[chosen[g]]
        out_scores[g] = total[chosen[g]]
    if relaxed:  # the skipped ones filled in at the end: back to score order (ties by item)
        by = np.argsort(out_items, kind="mergesort")
        by = by[np.argsort(-out_scores[by], kind="mergesort")]
        out_items = out_items[by]
        out_scores = out_scores[by]
        chosen = chosen[by]
    whys = np.empty(got, np.int64)
    for g in range(got):
        c = chosen[g]
        best = mat[0, c]
        why = 0
        for r in range(1, p + 1):
            if mat[r, c] > best:
                best = mat[r, c]
                why = r
        whys[g] = why
    return out_items, out_scores, whys, relaxed


@_compiled
def rank_pool(
    keys: np.ndarray,
    vals: np.ndarray,
    bounds: np.ndarray,
    finding: int,
    w: np.ndarray,
    ok: np.ndarray,
    order: np.ndarray,
    heat: np.ndarray,
    widen: np.ndarray,
    cold: bool,
    trend_w: np.float32,
    k: int,
    category: np.ndarray,
    brand: np.ndarray,
    cap: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    """The merge-score-order step of ``Bundle.rank`` (see its docstring) in one call.

    ``keys`` / ``vals``: every part's entries (items, padded with -1 or n; float64 scores) one
    part after another, part ``j`` at ``bounds[j]:bounds[j + 1]``, the first ``finding`` parts
    the ones that find candidates; ``w`` the parts' float32 weights; ``ok`` (bool over the items
    plus the padding slot, changed here) the items that may be answered; ``order`` the trending
    order, ``heat`` / ``widen`` the trending rows; ``cap`` the diversity cap (-1: none) and ``window`` how many of the best
    the diversity pass looks at.

    An item's sum in a part adds its entries in read order in float64 (as ``np.bincount`` did);
    a part's largest is that sum's float32 (``inf`` when not positive, so the part scores 0).
    Returns the answered items, their float32 scores, the row each one's reason comes from
    (``len(w)``: the trending row) and whether the diversity caps were relaxed."""
    n = len(ok) - 1
    p = len(w)
    # Every distinct item of the parts gets a column of ``sums`` (one row a part), found through
    # ``slot``: a sparse set, read before it is written (np.empty), an entry trusted only when it
    # points back at its item, so nothing of the n items' size is cleared or sorted.
    entries = bounds[p]
    slot = np.empty(n + 1, np.int64)
    known = np.empty(entries, np.int64)  # the item of each column
    finds = np.zeros(entries, np.bool_)
    sums = np.zeros((p, entries), np.float64)
    u = 0
    for j in range(p):
        for e in range(bounds[j], bounds[j + 1]):
            i = keys[e]
            if i < 0 or i >= n:  # padding: never counts
                continue
            q = slot[i]
            if q < 0 or q >= u or known[q] != i:
                q = u
                slot[i] = q
                known[q] = i
                u += 1
            sums[j, q] += vals[e]
            if j < finding:
                finds[q] = True
    top = np.empty(p, np.float32)
    for j in range(p):
        best = -np.inf
        for e in range(bounds[j], bounds[j + 1]):
            i = keys[e]
            if i >= 0 and i < n:
                best = max(best, sums[j, slot[i]])
        t = np.float32(best) if best > -np.inf else np.float32(0.0)
        top[j] = t if t > np.float32(0.0) else _INF32
    # The candidates: the finding parts' allowed items, sorted (each once already).
    cand = np.empty(u, np.int64)
    nc = 0
    for q in range(u):
        if finds[q] and ok[known[q]]:
            cand[nc] = known[q]
            nc += 1
    cand = np.sort(cand[:nc])
    walked = cand[:0]
    pos = 0
    if cold:
        walked, pos = _walk(order, ok, k, 0)
    elif len(cand) < k:
        for i in cand:
            ok[i] = False
        walked, pos = _walk(order, ok, k - len(cand), 0)
    pool = _merge(cand, walked) if len(walked) else cand
    items, scores, whys, relaxed = _score(
        pool, slot, known, u, sums, top, w, heat, widen, cold, trend_w, k,
        category, brand, cap, window,
    )  # fmt: skip
    if relaxed and pos < n:  # the caps had to be relaxed: widen once and try again
        for i in pool:
            ok[i] = False
        more, pos = _walk(order, ok, 4 * k, pos)
        if len(more):
            pool = _merge(pool, more)
            items, scores, whys, relaxed = _score(
                pool, slot, known, u, sums, top, w, heat, widen, cold, trend_w, k,
                category, brand, cap, window,
            )  # fmt: skip
    return items, scores, whys, relaxed


@_compiled
def row_sources(
    ids: np.ndarray, scores: np.ndarray, rows: np.ndarray, want: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """For each item of ``want``: the source row (``rows[r]``) of the block whose entry for it is
    largest (ties: the lower source), -1 when no row holds it."""
    out = np.full(len(want), -1, np.int64)
    for t in range(len(want)):
        item = want[t]
        best = np.float32(0.0)
        for r in range(ids.shape[0]):
            src = rows[r]
            for c in range(ids.shape[1]):
                if ids[r, c] != item:
                    continue
                v = scores[r, c]
                if out[t] < 0 or v > best or (v == best and src < out[t]):
                    best = v
                    out[t] = src
    return out


def diversity_cap(max_share: float, k: int) -> int:
    """The most items of one category (and of one brand) an answer of ``k`` may hold; -1 when
    ``max_share`` caps nothing."""
    share = float(max_share)
    if not math.isfinite(share) or share >= 1.0:
        return -1
    return max(1, math.ceil(max(share, 0.0) * k))


def warm() -> None:
    """Compile (or load from the cache) the kernels with tiny inputs of the dtypes requests
    pass, one cold and one personal, the caps on and off."""
    n = 4
    keys = np.array([0, 1, -1, 2, n], np.int64)
    vals = np.array([1.0, 0.5, 0.0, 0.25, 0.0], np.float64)
    bounds = np.array([0, 3, 5], np.int64)
    w = np.ones(2, np.float32)
    order = np.arange(n, dtype=np.int32)
    heat = np.linspace(1.0, 0.0, n).astype(np.float32)
    codes = np.zeros(n, np.int32)
    for cold, cap in ((False, 1), (True, -1)):
        ok = np.ones(n + 1, np.bool_)
        ok[n] = False
        rank_pool(
            keys, vals, bounds, 1, w, ok, order, heat, heat * np.float32(0.01), cold,
            np.float32(1.0), 2, codes, codes, cap, 40,
        )  # fmt: skip
    row_sources(keys.reshape(1, -1).astype(np.int32), vals.astype(np.float32)[None], bounds, bounds)
