"""Recommendation training and top-50 precompute at scale (issue 6, Performance, first bullet).

Generates 100,000 shoppers, 20,000 products and 5,000,000 interactions in memory (seeded; taste
groups with a Zipf popularity skew inside each group and a share of globally popular items, time
running forward per shopper, baskets per shopper and day, item text naming the group), builds the
training set, then for each component of the default hybrid: fits it, and precomputes the top-50 of
every shopper with :func:`recommend.precompute` in blocks of users (one score matrix per block).

For every block the same dense score matrix is given to two top-k routines, in the same run:

* plain: ``np.argpartition(-scores, k - 1, axis=1)[:, :k]`` and the ``k`` chosen ordered by
  score (``np.argsort``) -- the usual numpy idiom, the least an ordered top-k list costs, with
  nothing excluded;
* ours: ``exclude_seen`` (the shopper's training items set to -inf) + ``select_top`` (argpartition,
  of the scores negated in place, order by score then item index, int32 ids and float32 scores
  stored).

``ratio`` = ours / plain over all blocks: the overhead of our precompute pipeline over a plain top-k
of the same scores (issue target at most 1.3). Producing the scores (``score s``) is reported
apart, and ``end-to-end`` = (score + ours) / (score + plain).

Peak memory per component is the process's peak resident set (VmHWM, reset before each component
through /proc/self/clear_refs), and the rise over the resident set before it started.

EASE needs a dense ``n_items^2`` Gram matrix and its inverse: at 20,000 items 3.2 GB each in float64
and about ``2 n^3`` flops. By default it is measured on the most popular 2,000 / 4,000 / 8,000 items
and extrapolated (``--ease-sizes``); ``--components ease`` runs it at full size.

Serving (``--serving``, on by default; ``--serving-only`` skips the per-component runs): a hybrid of
``--serving-components`` (default item-kNN, ALS, content, bought together, trending; fixed HOME
weights, no tuning) is fitted and its serving bundle (recommend/serving.py) built: build seconds,
bundle MB (the blob and the arrays in memory), ``Bundle.loads`` seconds (best of 3; also for a
zlib-compressed blob, which is not what is stored), and ``Bundle.rank`` per-request microseconds
(p50 / p99, in-process, one thread) for HOME with a known shopper, 3 recent items (a view, an add to
cart, a view) and a filter (about 80 % of products in stock, one category in ten left out), k = 10,
against the baseline of a plain top-10 slice of the same shopper's precomputed list turned into item
keys, timed alternately in the same loop (``rank ratio`` = rank p50 / baseline p50).

``--rank-before REV`` (e.g. a commit before a change to ``Bundle.rank``) also loads
recommend/serving.py as it was at git revision REV as a second module, loads the same blob with
it, and times both ``rank`` codes alternately in the same loop on the same requests, five kinds
of ``--requests`` each: storefront (what bench/recommend_serving.py sends: HOME, a known shopper,
two products just viewed and three stored events, one of four filters in turn; see
``storefront_requests``), HOME as above, cold start (no shopper, the same 3 recent items), PRODUCT
(a product drawn by popularity, the shopper, the recent items) and CART (two products); per kind
p50 / p90 / p99 of each and ``speedup`` = before p50 / now p50, and how many answers differ (items,
order, reasons, sources, categories, or scores beyond float32 precision: must be 0).

    .venv/bin/python bench/recommend_scale.py [--quick] [--users N] [--items N]
        [--interactions N] [--components a,b,...] [--k 50] [--ease-sizes 2000,4000,8000]
        [--serving | --no-serving] [--serving-only] [--serving-components a,b,...]
        [--requests N] [--rank-before REV] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import scipy.sparse as sp
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from recommend.components import DEFAULT_ALGORITHMS, SpecError, make, split_specs
from recommend.precompute import block_size, exclude_seen, select_top
from recommend.protocol import TrainSet

WORDS = (
    "red blue green gold silver linen wooden ceramic glass paper vintage modern floral "
    "striped kitchen garden candle lantern mug bag card frame clock cushion"
).split()
DAY = 86400.0
FULL = {"users": 100_000, "items": 20_000, "interactions": 5_000_000}
QUICK = {"users": 600, "items": 300, "interactions": 12_000}


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# --- memory ------------------------------------------------------------------------------------


def _status(key: str) -> int:
    """A VmXXX line of /proc/self/status in bytes (0 where there is no /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --- data --------------------------------------------------------------------------------------


def generate(
    users: int, items: int, interactions: int, *, groups: int = 50, seed: int = 0
) -> TrainSet:
    """A training set with the structure described in the module docstring, built directly from
    integer arrays (user ``u000042`` is row 42, item ``42`` column 42)."""
    rng = np.random.default_rng(seed)
    item_group = rng.integers(0, groups, size=items)
    zipf = 1.0 / np.arange(1, items + 1) ** 0.9
    rng.shuffle(zipf)
    # Sampling by group: items sorted by group, each group's cumulative weights run g .. g+1.
    by_group = np.argsort(item_group, kind="stable")
    g_sorted = item_group[by_group]
    w = zipf[by_group]
    totals = np.bincount(g_sorted, weights=w, minlength=groups)
    cum = np.cumsum(w)
    starts = np.concatenate(([0.0], np.cumsum(totals)[:-1]))
    group_cdf = g_sorted + (cum - starts[g_sorted]) / np.where(totals > 0, totals, 1)[g_sorted]
    glob_cdf = np.cumsum(zipf) / zipf.sum()
    # Interactions per user: 10..90 (mean 50 at full size), adjusted to the exact total.
    mean = interactions / users
    counts = rng.integers(max(1, int(mean * 0.2)), int(mean * 1.8) + 1, size=users)
    diff = interactions - int(counts.sum())
    while diff:
        step = np.sign(diff)
        idx = rng.choice(users, size=min(abs(diff), users), replace=False)
        idx = idx[counts[idx] + step >= 1]
        counts[idx] += step
        diff = interactions - int(counts.sum())
    ev_user = np.repeat(np.arange(users, dtype=np.int64), counts)
    user_group = rng.integers(0, groups, size=users)
    loyal = rng.random(interactions) < 0.8
    u01 = rng.random(interactions)
    g = user_group[ev_user]
    ev_item = np.empty(interactions, dtype=np.int64)
    pos = np.searchsorted(group_cdf, g[loyal] + np.minimum(u01[loyal], 1 - 1e-12), side="right")
    ev_item[loyal] = by_group[np.minimum(pos, items - 1)]
    pos = np.searchsorted(glob_cdf, u01[~loyal], side="right")
    ev_item[~loyal] = np.minimum(pos, items - 1)
    # Time runs forward per user from a start in a 200-day window, gaps of ~2 days.
    start = 1_700_000_000.0 + rng.uniform(0, 200, size=users) * DAY
    gaps = rng.exponential(2.0, size=interactions) * DAY
    csum = np.cumsum(gaps)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ev_time = start[ev_user] + csum - (csum[first] - gaps[first])[ev_user]
    ev_weight = np.ones(interactions)
    return build(ev_user, ev_item, ev_time, ev_weight, users, items, item_group, rng)


def build(
    eu: np.ndarray,
    ei: np.ndarray,
    et: np.ndarray,
    ew: np.ndarray,
    n_users: int,
    n_items: int,
    item_group: np.ndarray,
    rng: np.random.Generator,
) -> TrainSet:
    """What :func:`recommend.protocol.build` makes, from integer codes (no string ids to sort)."""
    shape = (n_users, n_items)
    m = sp.csr_matrix((ew.astype(np.float32), (eu, ei)), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    order = np.lexsort((et, ei, eu))
    lu, li, lt = eu[order], ei[order], et[order]
    last = np.ones(len(lu), dtype=bool)
    last[:-1] = (lu[1:] != lu[:-1]) | (li[1:] != li[:-1])
    last_time = sp.csr_matrix((lt[last], (lu[last], li[last])), shape=shape, dtype=np.float64)
    day = ((et - et.min()) // DAY).astype(np.int64)
    _, basket = np.unique(eu * (int(day.max()) + 1) + day, return_inverse=True)
    baskets = sp.csr_matrix(
        (np.ones(len(basket), np.float32), (basket.ravel(), ei)),
        shape=(int(basket.max()) + 1, n_items),
    )
    baskets.sum_duplicates()
    baskets.data[:] = 1.0
    words = len(WORDS)
    text = [
        f"{WORDS[gr % words]} {WORDS[(gr * 7 + 3) % words]} tag{gr} "
        f"{WORDS[int(rng.integers(0, words))]}"
        for gr in item_group.tolist()
    ]
    users = np.array([f"u{u:06d}" for u in range(n_users)], dtype=object)
    items = np.array([str(i) for i in range(n_items)], dtype=object)
    return TrainSet(
        users,
        items,
        m,
        None,
        eu,
        ei,
        et,
        ew,
        last_time,
        baskets,
        text,
        [f"c{gr}" for gr in item_group.tolist()],
        float(et.max()),
        {u: i for i, u in enumerate(users.tolist())},
        {it: i for i, it in enumerate(items.tolist())},
    )


# --- measurement -------------------------------------------------------------------------------


def plain_top(scores: np.ndarray, k: int) -> np.ndarray:
    """The baseline: argpartition and the k chosen ordered by score; nothing excluded."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    return np.take_along_axis(part, np.argsort(-vals, axis=1), axis=1)


def measure(
    spec: str, train: TrainSet, k: int, progress: Progress | None, batch: int | None = None
) -> dict[str, Any]:
    gc.collect()
    has_peak = reset_peak()
    rss0 = _status("VmRSS")
    comp = make(spec)
    t0 = time.perf_counter()
    comp.fit(train)
    fit_s = time.perf_counter() - t0
    fit_peak = _status("VmHWM") if has_peak else 0
    seen = train.binary()
    n_users, n_items = train.n_users, train.n_items
    size = batch or block_size(n_items)
    kk = min(k, n_items)
    ids_out = np.empty((n_users, kk), np.int32)
    vals_out = np.empty((n_users, kk), np.float32)
    t_score = t_plain = t_ours = 0.0
    task = progress.add_task(f"{spec} top-{k}", total=n_users) if progress else None
    for a in range(0, n_users, size):
        block = np.arange(a, min(n_users, a + size))
        t1 = time.perf_counter()
        s = np.asarray(comp.scores(block))
        t2 = time.perf_counter()
        plain_top(s, kk)
        t3 = time.perf_counter()
        exclude_seen(s, seen[block])
        ids, vals = select_top(s, kk, overwrite=True)
        ids_out[block] = ids
        vals_out[block] = vals
        t4 = time.perf_counter()
        t_score += t2 - t1
        t_plain += t3 - t2
        t_ours += t4 - t3
        del s
        if progress is not None and task is not None:
            progress.update(task, advance=len(block))
    if progress is not None and task is not None:
        progress.remove_task(task)
    peak = _status("VmHWM") if has_peak else 0
    filled = float((ids_out >= 0).mean()) if ids_out.size else 0.0
    # Sanity: no list holds a seen item.
    r = ids_out[: min(n_users, 200)]
    bad = sum(len(np.intersect1d(r[u][r[u] >= 0], seen[u].indices)) for u in range(len(r)))
    del comp
    gc.collect()
    return {
        "component": spec,
        "fit_s": round(fit_s, 2),
        "score_s": round(t_score, 2),
        "plain_topk_s": round(t_plain, 2),
        "precompute_topk_s": round(t_ours, 2),
        "ratio": round(t_ours / t_plain, 3) if t_plain > 0 else None,
        "end_to_end_ratio": round((t_score + t_ours) / (t_score + t_plain), 3)
        if t_score + t_plain > 0
        else None,
        "total_s": round(fit_s + t_score + t_ours, 2),
        "peak_rss_mb": round(peak / 2**20) if peak else None,
        "fit_peak_rss_mb": round(fit_peak / 2**20) if fit_peak else None,
        "rise_mb": round((peak - rss0) / 2**20) if peak else None,
        "lists_mb": round((ids_out.nbytes + vals_out.nbytes) / 2**20, 1),
        "filled": round(filled, 4),
        "seen_in_lists": bad,
        "block_users": size,
    }


def ease_probe(train: TrainSet, sizes: list[int], full_items: int) -> dict[str, Any]:
    """EASE fit (Gram + dense inverse) on the most popular ``n`` items for each size, and its
    cubic extrapolation to ``full_items``."""
    pop = np.asarray(train.binary().sum(axis=0)).ravel()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        if n > train.n_items:
            continue
        cols = np.sort(np.argsort(-pop, kind="stable")[:n])
        sub = dataclasses.replace(
            train, matrix=train.matrix[:, cols].tocsr(), items=train.items[cols]
        )
        gc.collect()
        has_peak = reset_peak()
        rss0 = _status("VmRSS")
        comp = make("ease")
        t0 = time.perf_counter()
        comp.fit(sub)
        fit_s = time.perf_counter() - t0
        peak = _status("VmHWM") if has_peak else 0
        rows.append(
            {
                "items": n,
                "fit_s": round(fit_s, 2),
                "rise_mb": round((peak - rss0) / 2**20) if peak else None,
            }
        )
        log(f"ease probe {n} items: fit {fit_s:.1f} s")
        del comp, sub
    out: dict[str, Any] = {"sizes": rows}
    if rows:
        big = rows[-1]
        f = (full_items / big["items"]) ** 3
        out["extrapolated_fit_s"] = round(big["fit_s"] * f)
        out["dense_gram_gb"] = round(full_items**2 * 8 / 1e9, 2)
        # Gram (inverted in place), B in float64, B in float32.
        out["extrapolated_peak_gb"] = round(full_items**2 * (8 + 8 + 4) / 1e9, 1)
    return out


SERVING_COMPONENTS = "itemknn,als,content,together,trending"
# HOME blend of the serving bench (the refresh job tunes these; fixed here so runs compare).
SERVING_WEIGHTS = {"itemknn": 1.0, "als": 1.0, "content": 0.25, "together": 0.1, "trending": 0.25}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


def measure_serving(
    train: TrainSet,
    specs: list[str],
    k: int,
    requests: int,
    seed: int,
    progress: Progress | None,
    before: Any = None,
) -> dict[str, Any]:
    """Fit the serving hybrid, build, dump and load its bundle, and time ``rank`` per request
    against a plain slice of the precomputed list (see the module docstring)."""
    from recommend.hybrid import ITEM_WEIGHTS, Hybrid
    from recommend.serving import Bundle, RankRequest, Recent, View

    gc.collect()
    has_peak = reset_peak()
    rss0 = _status("VmRSS")
    t0 = time.perf_counter()
    comps = {}
    for spec in specs:
        c = make(spec)
        comps[c.name] = c.fit(train)
    fit_s = time.perf_counter() - t0
    home = {n: SERVING_WEIGHTS.get(n, 1.0) for n in comps}
    weights = {
        "HOME": home,
        "EMAIL": dict(home),
        "PRODUCT": dict(ITEM_WEIGHTS["PRODUCT"]),
        "CART": dict(ITEM_WEIGHTS["CART"]),
    }
    hybrid = Hybrid(train, comps, weights)
    task = progress.add_task("bundle", total=train.n_users + train.n_items) if progress else None

    def tell(step: str, done: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, total=total, description=step)

    t0 = time.perf_counter()
    bundle = Bundle.build(hybrid, top_n=k, progress=tell)
    build_s = time.perf_counter() - t0
    if progress is not None and task is not None:
        progress.remove_task(task)
    peak = _status("VmHWM") if has_peak else 0
    del hybrid, comps
    gc.collect()
    t0 = time.perf_counter()
    blob = bundle.dumps()
    dumps_s = time.perf_counter() - t0
    packed = bundle.dumps(compress=True)

    def best_load(data: bytes) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            Bundle.loads(data)
            best = min(best, time.perf_counter() - t)
        return best

    loads_s = best_load(blob)
    loads_packed_s = best_load(packed)
    served = Bundle.loads(blob)
    del packed

    # Requests: a known shopper, 3 recent items, a filter.
    rng = np.random.default_rng(seed + 1)
    n = len(served.items)
    group = np.array([int(c[1:]) if c[1:].isdigit() else -1 for c in served.item_category.tolist()])
    category = group.astype(np.int32)
    brand = rng.integers(0, max(1, n // 100), size=n).astype(np.int32)
    in_stock = rng.random(n) < 0.8
    pop = np.asarray(served.popular, np.float64)
    p = pop / pop.sum() if pop.sum() > 0 else None
    answer_k = 10
    rank_us: list[float] = []
    base_us: list[float] = []
    sizes: list[int] = []
    keys = served.items
    for r in range(requests):
        u = int(rng.integers(0, len(served.users)))
        left_out = int(rng.integers(0, 10))
        allowed = in_stock & (category % 10 != left_out)
        view = View(allowed=allowed, category=category, brand=brand)
        recent_items = rng.choice(n, size=3, replace=False, p=p)
        recent = tuple(
            Recent(str(keys[j]), kind, float(age))
            for j, kind, age in zip(
                recent_items.tolist(), ("view", "add_to_cart", "view"), (20, 240, 900), strict=True
            )
        )
        req = RankRequest(user=str(served.users[u]), recent=recent, k=answer_k)
        t1 = time.perf_counter_ns()
        plain = [str(keys[j]) for j in served.user_top_ids[u][:answer_k]]
        t2 = time.perf_counter_ns()
        got = served.rank(req, view)
        t3 = time.perf_counter_ns()
        if r >= min(20, requests // 10):  # warm-up left out
            base_us.append((t2 - t1) / 1000)
            rank_us.append((t3 - t2) / 1000)
        sizes.append(len(got))
        assert len(plain) <= answer_k
    rank_p50, base_p50 = _pct(rank_us, 50), _pct(base_us, 50)
    return {
        "components": specs,
        "home_weights": home,
        "fit_s": round(fit_s, 2),
        "build_s": round(build_s, 2),
        "build_shoppers_s": round(bundle.meta["build_seconds"]["shoppers"], 2),
        "build_products_s": round(bundle.meta["build_seconds"]["products"], 2),
        "build_sources_s": round(bundle.meta["build_seconds"].get("sources", 0.0), 2),
        "build_peak_rss_mb": round(peak / 2**20) if peak else None,
        "build_rise_mb": round((peak - rss0) / 2**20) if peak else None,
        "blob_mb": round(len(blob) / 2**20, 1),
        "compressed_blob_mb": round(len(bundle.dumps(compress=True)) / 2**20, 1),
        "memory_mb": round(served.nbytes / 2**20, 1),
        "dumps_s": round(dumps_s, 3),
        "loads_s": round(loads_s, 3),
        "compressed_loads_s": round(loads_packed_s, 3),
        "requests": len(rank_us),
        "rank_p50_us": round(rank_p50, 1),
        "rank_p99_us": round(_pct(rank_us, 99), 1),
        "baseline_p50_us": round(base_p50, 2),
        "baseline_p99_us": round(_pct(base_us, 99), 2),
        "rank_ratio": round(rank_p50 / base_p50, 1) if base_p50 > 0 else None,
        "full_answers": round(float(np.mean([s == answer_k for s in sizes])), 4),
        "rank_before": compare_rank(blob, before, requests, seed) if before is not None else None,
    }


def load_serving_at(rev: str) -> Any:
    """recommend/serving.py as it was at git revision ``rev``, as a module of its own."""
    import importlib.util
    import tempfile

    root = Path(__file__).resolve().parent.parent
    code = subprocess.run(
        ["git", "show", f"{rev}:recommend/serving.py"],
        cwd=root,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "serving_before.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("serving_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serving_before"] = module
    spec.loader.exec_module(module)
    return module


def compare_rank(blob: bytes, before: Any, requests: int, seed: int) -> dict[str, Any]:
    """``Bundle.rank`` now against ``before`` (a module from :func:`load_serving_at`) on the same
    blob and the same requests, timed alternately (see the module docstring)."""
    from recommend import serving as now

    a, b = now.Bundle.loads(blob), before.Bundle.loads(blob)
    rng = np.random.default_rng(seed + 2)
    n = len(a.items)
    group = np.array([int(c[1:]) if c[1:].isdigit() else -1 for c in a.item_category.tolist()])
    category = group.astype(np.int32)
    brand = rng.integers(0, max(1, n // 100), size=n).astype(np.int32)
    in_stock = rng.random(n) < 0.8
    pop = np.asarray(a.popular, np.float64)
    p = pop / pop.sum() if pop.sum() > 0 else None
    keys = a.items.tolist()
    store = storefront_requests(a, category, requests, seed)
    out: dict[str, Any] = {}
    for kind in ("storefront", "HOME", "cold", "PRODUCT", "CART"):
        t_now: list[float] = []
        t_before: list[float] = []
        differ = 0
        for r in range(requests):
            ask: dict[str, Any] = {"k": 10}
            if kind == "storefront":
                ask["user"], allowed, events = store[r]
            else:
                user = str(a.users[int(rng.integers(0, len(a.users)))])
                allowed = in_stock & (category % 10 != int(rng.integers(0, 10)))
                picks = rng.choice(n, size=3, replace=False, p=p).tolist()
                events = list(
                    zip(picks, ("view", "add_to_cart", "view"), (20.0, 240.0, 900.0), strict=True)
                )
            if kind not in ("cold", "storefront"):
                ask["user"] = user
            if kind == "PRODUCT":
                ask.update(scenario="PRODUCT", product=keys[int(rng.choice(n, p=p))])
            if kind == "CART":
                cart = tuple(keys[j] for j in rng.choice(n, size=2, replace=False, p=p).tolist())
                ask.update(scenario="CART", cart=cart)
            answers: list[Any] = [None, None]
            times = [0.0, 0.0]
            # Which code goes first alternates per request: the second call finds the request's
            # rows already in the CPU caches (the same code against itself reads about 1.06 in a
            # fixed order).
            pair = ((0, now, a), (1, before, b))
            for slot, mod, bundle in pair if r % 2 == 0 else pair[::-1]:
                recent = tuple(mod.Recent(keys[j], kd, age) for j, kd, age in events)
                req = mod.RankRequest(recent=recent, **ask)
                view = mod.View(allowed=allowed, category=category, brand=brand)
                t1 = time.perf_counter_ns()
                answers[slot] = bundle.rank(req, view)
                times[slot] = (time.perf_counter_ns() - t1) / 1000
            if r >= min(20, requests // 10):  # warm-up left out
                t_now.append(times[0])
                t_before.append(times[1])
            x, y = answers
            same = [(i.item, i.reason, i.source, i.category) for i in x] == [
                (i.item, i.reason, i.source, i.category) for i in y
            ] and np.allclose(
                np.float32([i.score for i in x]), np.float32([i.score for i in y]), rtol=2e-7
            )
            differ += not same
        now_p50, before_p50 = _pct(t_now, 50), _pct(t_before, 50)
        out[kind] = {
            "requests": requests,
            "now_p50_us": round(now_p50, 1),
            "now_p90_us": round(_pct(t_now, 90), 1),
            "now_p99_us": round(_pct(t_now, 99), 1),
            "before_p50_us": round(before_p50, 1),
            "before_p90_us": round(_pct(t_before, 90), 1),
            "before_p99_us": round(_pct(t_before, 99), 1),
            "speedup": round(before_p50 / now_p50, 2) if now_p50 > 0 else None,
            "answers_differ": differ,
        }
    return out


def storefront_requests(
    bundle: Any, category: np.ndarray, requests: int, seed: int
) -> list[tuple[str, np.ndarray, list[tuple[int, str, float]]]]:
    """What bench/recommend_serving.py's storefront asks for, as ``rank`` sees it: a known
    shopper, five recent products (two the client just viewed, anywhere in the catalogue; three
    stored events of the last minutes from the first half: a view, a view, an add to cart) and
    one of four filters in turn: a category subtree (10 or 5 of the 50 groups), a price range
    (150 of 5-305 EUR), in stock only, a category subtree and in stock only; 4 % of products
    inactive or archived. (user, allowed, events) per request, from their own seeded stream."""
    rng = np.random.default_rng(seed + 3)
    n = len(bundle.items)
    active = rng.random(n) >= 0.04
    in_stock = rng.random(n) >= 0.08
    price = rng.uniform(5.0, 305.0, size=n)
    out = []
    for r in range(requests):
        user = str(bundle.users[int(rng.integers(0, len(bundle.users)))])
        allowed = active.copy()
        if r % 4 in (0, 3):
            size = 10 if rng.random() < 0.5 else 5
            low = size * int(rng.integers(0, 50 // size))
            allowed &= (category >= low) & (category < low + size)
        if r % 4 == 1:
            cheapest = float(rng.choice([0.0, 20.0, 50.0]))
            allowed &= (price >= cheapest) & (price <= cheapest + 150.0)
        if r % 4 in (2, 3):
            allowed &= in_stock
        client = rng.integers(0, n, size=2).tolist()
        stored = rng.integers(0, max(n // 2, 1), size=3).tolist()
        events = [(j, "view", 0.0) for j in client]
        events += list(
            zip(stored, ("view", "view", "add_to_cart"), (65.0, 125.0, 185.0), strict=True)
        )
        out.append((user, allowed, events))
    return out


def compare_table(r: dict[str, Any]) -> str:
    lines = [
        "| request | before p50 / p90 / p99 us | now p50 / p90 / p99 us | speedup (p50) | differ |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, x in r.items():
        lines.append(
            f"| {kind} | {x['before_p50_us']} / {x['before_p90_us']} / {x['before_p99_us']} | "
            f"{x['now_p50_us']} / {x['now_p90_us']} / {x['now_p99_us']} | {x['speedup']} | "
            f"{x['answers_differ']} |"
        )
    return "\n".join(lines)


def serving_table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| fit s | build s (shoppers + products) | blob MB | memory MB | loads s | zlib blob MB "
            "| zlib loads s | rank p50 us | rank p99 us | slice p50 us | rank ratio | sources s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r['fit_s']:.1f} | {r['build_s']:.1f} ({r['build_shoppers_s']:.1f} + "
            f"{r['build_products_s']:.1f}) | {r['blob_mb']} | {r['memory_mb']} | {r['loads_s']:.3f} | "
            f"{r['compressed_blob_mb']} | {r['compressed_loads_s']:.3f} | {r['rank_p50_us']} | "
            f"{r['rank_p99_us']} | {r['baseline_p50_us']} | {r['rank_ratio']} | "
            f"{r['build_sources_s']:.1f} |",
        ]
    )


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| component | fit s | score s | plain top-k s | our top-k s | ratio | end-to-end | "
        "peak RSS MB | rise MB |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['component']} | {r['fit_s']:.1f} | {r['score_s']:.1f} | "
            f"{r['plain_topk_s']:.1f} | {r['precompute_topk_s']:.1f} | {r['ratio']} | "
            f"{r['end_to_end_ratio']} | {r['peak_rss_mb']} | {r['rise_mb']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI: seconds)")
    ap.add_argument("--users", type=int)
    ap.add_argument("--items", type=int)
    ap.add_argument("--interactions", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--batch", type=int, help="users per score block (default: 80 MB of scores)")
    ap.add_argument(
        "--components",
        help="comma-separated specs (default: the default hybrid's components; EASE only as the "
        "probe unless named here)",
    )
    ap.add_argument("--ease-sizes", default=None, help="item counts for the EASE probe ('' = none)")
    ap.add_argument(
        "--serving",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also build and time the serving bundle (default: on)",
    )
    ap.add_argument(
        "--serving-only", action="store_true", help="only the serving bundle measurements"
    )
    ap.add_argument(
        "--serving-components",
        default=SERVING_COMPONENTS,
        help=f"components of the serving hybrid (default: {SERVING_COMPONENTS})",
    )
    ap.add_argument("--requests", type=int, help="rank() requests timed (default 3000, quick 300)")
    ap.add_argument(
        "--rank-before",
        metavar="REV",
        help="also time Bundle.rank as recommend/serving.py was at git revision REV, same "
        "process, same requests, and check the answers are the same",
    )
    ap.add_argument("--json", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.requests is not None and args.requests < 1:
        ap.error("--requests must be positive")
    serving_specs: list[str] = []
    if args.serving or args.serving_only:
        try:
            serving_specs = split_specs(args.serving_components)
            for s in serving_specs:
                make(s)
        except SpecError as exc:
            ap.error(f"--serving-components: {exc}")
        if not serving_specs:
            ap.error("--serving-components: at least one component")
    before = None
    if args.rank_before:
        try:
            before = load_serving_at(args.rank_before)
        except (OSError, subprocess.CalledProcessError) as exc:
            ap.error(
                f"--rank-before: cannot read recommend/serving.py at {args.rank_before}: {exc}"
            )
    size = dict(QUICK if args.quick else FULL)
    for key in size:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if min(size.values()) < 1 or size["interactions"] < size["users"] or args.k < 1:
        ap.error("sizes and --k must be positive, interactions at least users")
    if args.components:
        try:
            specs = split_specs(args.components)
        except SpecError as exc:
            ap.error(str(exc))
    else:
        specs = [a for a in DEFAULT_ALGORITHMS if a != "ease"]
    for s in specs:
        try:
            make(s)  # a bad spec fails before the data is built
        except SpecError as exc:
            ap.error(str(exc))
    if args.ease_sizes is None:
        ease_sizes = [100, 200] if args.quick else [2000, 4000, 8000]
    else:
        try:
            ease_sizes = [int(x) for x in args.ease_sizes.split(",") if x.strip()]
        except ValueError:
            ap.error("--ease-sizes: comma-separated item counts")
        if any(n < 2 for n in ease_sizes):
            ap.error("--ease-sizes: item counts of at least 2")

    log(
        f"generating {size['users']:,} users, {size['items']:,} items, "
        f"{size['interactions']:,} interactions"
    )
    t0 = time.perf_counter()
    train = generate(size["users"], size["items"], size["interactions"], seed=args.seed)
    train.binary()
    gen_s = time.perf_counter() - t0
    log(
        f"data ready in {gen_s:.1f} s: {train.matrix.nnz:,} distinct pairs, "
        f"{train.baskets.shape[0]:,} baskets, RSS {_status('VmRSS') / 2**20:.0f} MB"
    )
    rows: list[dict[str, Any]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        for spec in [] if args.serving_only else specs:
            log(f"{spec}: fit and top-{args.k} for {train.n_users:,} users")
            row = measure(spec, train, args.k, progress, args.batch)
            log(
                f"{spec}: fit {row['fit_s']} s, score {row['score_s']} s, top-k ours "
                f"{row['precompute_topk_s']} s / plain {row['plain_topk_s']} s = ratio "
                f"{row['ratio']}, peak RSS {row['peak_rss_mb']} MB"
            )
            rows.append(row)
        serving = None
        if serving_specs:
            log(f"serving bundle: fit {','.join(serving_specs)} and build (top-{args.k})")
            requests = args.requests or (300 if args.quick else 3000)
            serving = measure_serving(
                train, serving_specs, args.k, requests, args.seed, progress, before
            )
            log(
                f"serving: build {serving['build_s']} s, blob {serving['blob_mb']} MB, loads "
                f"{serving['loads_s']} s, rank p50 {serving['rank_p50_us']} us"
            )
    ease = (
        ease_probe(train, ease_sizes, size["items"])
        if ease_sizes and not args.serving_only
        else None
    )
    if rows:
        print(table(rows))
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    if ratios:
        print(
            f"\nratio (our top-k / plain argpartition top-k, same scores): "
            f"min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.3: "
            f"{'met' if max(ratios) <= 1.3 else 'NOT met'}"
        )
    if ease:
        print(f"\nEASE probe: {json.dumps(ease)}")
    if serving:
        print("\nServing bundle (HOME, known shopper, 3 recent items, a filter, k = 10):\n")
        print(serving_table(serving))
        if serving.get("rank_before"):
            print(f"\nBundle.rank now against {args.rank_before} (same process, same requests):\n")
            print(compare_table(serving["rank_before"]))
    if any(r["seen_in_lists"] for r in rows):
        print("ERROR: a precomputed list holds a seen item", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "size": size,
                    "distinct_pairs": int(train.matrix.nnz),
                    "generate_s": round(gen_s, 2),
                    "k": args.k,
                    "results": rows,
                    "ease_probe": ease,
                    "serving": serving,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
