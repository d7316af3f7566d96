"""``Bundle.rank`` pinned to recorded answers (differential): seeded random bundles (built straight
from arrays, so the same on every machine, with many tied scores so tie-breaking is exercised) and
several hundred random requests of every kind -- HOME / EMAIL personal, cold start (no shopper,
unknown shopper, no consent), PRODUCT and CART with and without a shopper, session events (every
kind, an unknown kind, repeats, unknown items, odd ages), exclusions, filters from none to all
allowed, diversity caps on, off and tight, unknown codes, k from 0 to more than the catalogue.

The answers in ``rank_answers.json`` were recorded from the ranking code before it was made
cheaper per request (``recommend/serving.py`` of commit 89a3093, d147bb0's parent), so the faster code must give the same items in the same
order with the same scores (float32 precision), reasons, sources and categories. Re-record only
for an intended change of the answers:

    .venv/bin/python -m tests.recommend.test_rank_differential --record
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommend.serving import (
    Bundle,
    Ranked,
    RankRequest,
    Recent,
    View,
    _best_source,
    _padded,
    _row_sources,
    _top_sources,
)
from tests.bench.test_bench_quick import ROOT, quick

ANSWERS = Path(__file__).with_name("rank_answers.json")
SEEDS = (11, 12, 13)
REQUESTS = 200  # per seed
KINDS = ("view", "add_to_cart", "favorite", "purchase", "wishlist")


def _quantised(rng: np.random.Generator, size: int) -> np.ndarray:
    """Descending positive scores on a coarse grid (so ties are common)."""
    return np.sort(rng.integers(1, 9, size=size).astype(np.float32) / 8)[::-1]


def _lists(
    rng: np.random.Generator, rows: int, n: int, width: int, own: bool, best_one: bool
) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((rows, width), -1, np.int32)
    scores = np.zeros((rows, width), np.float32)
    for r in range(rows):
        fill = int(rng.integers(0, width + 1)) if rng.random() < 0.3 else width
        pick = rng.permutation(n)
        if own:
            pick = pick[pick != r]
        pick = pick[:fill]
        s = _quantised(rng, len(pick))
        if best_one and len(s):
            s = (s / s[0]).astype(np.float32)
        ids[r, : len(pick)] = pick
        scores[r, : len(pick)] = s
    return ids, scores


def _csr(
    rng: np.random.Generator, rows: int, n: int, most: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ptr = [0]
    ind: list[int] = []
    data: list[float] = []
    for _ in range(rows):
        cols = np.sort(rng.choice(n, size=int(rng.integers(0, most + 1)), replace=False))
        ind += cols.tolist()
        data += (rng.integers(1, 6, size=len(cols)) / 5).tolist()
        ptr.append(len(ind))
    return np.asarray(ptr, np.int64), np.asarray(ind, np.int32), np.asarray(data, np.float32)


def random_bundle(seed: int) -> Bundle:
    rng = np.random.default_rng(seed)
    n, u, width = int(rng.integers(40, 120)), 30, 12
    user_ids, user_scores = _lists(rng, u, n, width, own=False, best_one=True)
    sim_i, sim_s = _lists(rng, n, n, width, own=True, best_one=False)
    tog_i, tog_s = _lists(rng, n, n, width, own=True, best_one=False)
    con_i, con_s = _lists(rng, n, n, width, own=True, best_one=False)
    heat = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 20, size=n)).astype(np.float32)
    pop = rng.integers(0, 10, size=n).astype(np.float32)
    idx = np.arange(n)
    s_ptr, s_ind, s_data = _csr(rng, n, n, 10)
    t_ptr, t_ind, _ = _csr(rng, u, n, 8)
    b = Bundle(
        items=np.asarray([f"p{i}" for i in range(n)], np.str_),
        users=np.asarray([f"u{i}" for i in range(u)], np.str_),
        user_top_ids=user_ids,
        user_top_scores=user_scores,
        similar_ids=sim_i,
        similar_scores=sim_s,
        together_ids=tog_i,
        together_scores=tog_s,
        content_ids=con_i,
        content_scores=con_s,
        trending=heat,
        popular=pop,
        trending_order=np.lexsort((idx, -pop, -heat)).astype(np.int32),
        popular_order=np.lexsort((idx, -pop)).astype(np.int32),
        sim_indptr=s_ptr,
        sim_indices=s_ind,
        sim_data=s_data,
        train_indptr=t_ptr,
        train_indices=t_ind,
        tfidf_indptr=np.zeros(n + 1, np.int64),
        item_category=np.asarray([f"c{i % 5}" for i in range(n)], np.str_),
        meta={"format": 1, "top_n": width, "weights": {"CART": {"together": 1.0, "itemknn": 0.5}}},
    )
    b._check()
    return b


def random_requests(b: Bundle, seed: int, count: int) -> list[tuple[RankRequest, View]]:
    rng = np.random.default_rng(seed + 1000)
    n = len(b.items)
    items = b.items.tolist()
    users = b.users.tolist()

    def some(size: int) -> list[str]:
        out = [items[int(j)] for j in rng.integers(0, n, size=size)]
        return out + (["nope"] if rng.random() < 0.2 else [])

    out = []
    for _ in range(count):
        scenario = str(rng.choice(["HOME", "HOME", "EMAIL", "PRODUCT", "CART", "OTHER"]))
        who = rng.random()
        user = str(rng.choice(users)) if who < 0.6 else ("stranger" if who < 0.8 else None)
        recent = tuple(
            Recent(
                item,
                str(rng.choice(KINDS)),
                float(rng.choice([0.0, 30.0, 600.0, 7200.0, -5.0, math.nan])),
            )
            for item in some(int(rng.choice([0, 0, 1, 3, 6, 20])))
        )
        req = RankRequest(
            scenario=scenario,
            user=user,
            personal=bool(rng.random() < 0.85),
            product=(some(1)[0] if rng.random() < 0.9 else "nope")
            if scenario == "PRODUCT"
            else None,
            cart=tuple(some(int(rng.integers(0, 4)))) if scenario == "CART" else (),
            recent=recent,
            exclude=frozenset(some(int(rng.choice([0, 0, 2, 8])))),
            k=int(rng.choice([0, 1, 3, 5, 10, 10, 10, 25, 2 * n])),
        )
        density = float(rng.choice([0.0, 0.1, 0.5, 0.8, 1.0, 1.0]))
        v = View(
            allowed=rng.random(n) < density,
            category=rng.integers(-1, int(rng.choice([2, 4, 8])), size=n).astype(np.int32),
            brand=(
                rng.integers(-1, 6, size=n).astype(np.int32)
                if rng.random() < 0.5
                else np.full(n, -1, np.int32)
            ),
            max_share=float(rng.choice([0.5, 0.5, 0.2, 0.34, 1.0, math.inf, 0.0])),
        )
        out.append((req, v))
    return out


def flat(answer: list[Ranked]) -> list[list[Any]]:
    return [[r.item, r.score, r.reason, r.source, r.category] for r in answer]


def with_sources(b: Bundle) -> Bundle:
    """``b`` with ``user_top_source`` precomputed, as :meth:`Bundle.build` stores it."""
    n = len(b.items)
    sim = _padded(b.sim_indptr, b.sim_indices, b.sim_data, n)
    src = _top_sources(b.user_top_ids, b.train_indptr, b.train_indices, sim, n)
    out = dataclasses.replace(b, user_top_source=src)
    out._check()
    return out


def unpadded(b: Bundle) -> Bundle:
    """``b`` reading its session similarity rows per request (as for a bundle whose rows are too
    uneven to pad at load)."""
    b._sim_pad = None
    return b


def scored_empty_slots(b: Bundle) -> Bundle:
    """``b`` with a score in every empty (-1) slot of its lists: built bundles hold 0 there, and
    an empty slot must not count whatever it holds (the earlier code dropped them)."""
    for name in ("user_top", "similar", "together", "content"):
        ids, scores = getattr(b, f"{name}_ids"), getattr(b, f"{name}_scores")
        scores[ids < 0] = 7.0
    return b


VARIANTS = {
    "as recorded (no precomputed sources)": lambda b: b,
    "precomputed sources": with_sources,
    "similarity read per request": unpadded,
    "empty slots with a score": scored_empty_slots,
}


def answers(variant: str = "as recorded (no precomputed sources)") -> dict[str, Any]:
    got: dict[str, list[list[list[Any]]]] = {}
    for seed in SEEDS:
        b = VARIANTS[variant](random_bundle(seed))
        got[str(seed)] = [flat(b.rank(req, v)) for req, v in random_requests(b, seed, REQUESTS)]
    return got


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rank_gives_the_recorded_answers(variant: str) -> None:
    """The same answers whether a personal item's source is precomputed or found per request,
    and whether the similarity rows were padded at load or are read per request."""
    want = json.loads(ANSWERS.read_text())
    got = answers(variant)
    assert set(got) == set(want)
    kinds: set[str] = set()
    for seed in want:
        assert len(got[seed]) == len(want[seed]) == REQUESTS
        for i, (g, w) in enumerate(zip(got[seed], want[seed], strict=True)):
            where = f"seed {seed} request {i}"
            assert [x[0] for x in g] == [x[0] for x in w], where
            assert [x[2:] for x in g] == [x[2:] for x in w], where
            np.testing.assert_allclose(
                np.asarray([x[1] for x in g], np.float32),
                np.asarray([x[1] for x in w], np.float32),
                rtol=2e-7,
                atol=0,
                err_msg=where,
            )
            kinds.update(x[2] for x in g)
    # The recorded answers exercise every reason a request-time ranking can give.
    assert kinds == {"personal", "viewed", "similar", "together", "trending", "popular", "content"}
    lengths = [len(a) for seed in want for a in want[seed]]
    assert lengths.count(0) > 20 and sum(1 for x in lengths if x >= 10) > 100


def test_precomputed_sources_are_the_per_request_ones() -> None:
    """``_top_sources`` (every list at build time) against ``Bundle._history_source`` (one
    shopper's answered items per request), on the seeded bundles with their many ties."""
    for seed in SEEDS:
        b = random_bundle(seed)
        src = with_sources(b).user_top_source
        named = 0
        for user in range(len(b.users)):
            listed = [i for i in b.user_top_ids[user].tolist() if i >= 0]
            got = {i: s for i, s in zip(listed, src[user].tolist(), strict=False) if s >= 0}
            assert got == b._history_source(user, listed), (seed, user)
            named += len(got)
        assert (src[b.user_top_ids < 0] == -1).all() and named > 0


def test_row_sources_are_the_vectorised_best_source() -> None:
    """The explanation's source lookup over a part's block of rows gives :func:`_best_source`'s
    answer for the flattened entries: the largest entry per target, ties to the lower source
    row, padding (-1 and the item count) never a match, a source row repeated (a cart with one
    product twice) or an item twice in a row handled."""
    rng = np.random.default_rng(5)
    n = 30
    for rows, width in ((0, 5), (1, 5), (4, 10), (8, 12), (20, 20)):
        ids = rng.integers(-1, n + 1, size=(rows, width))
        scores = (rng.integers(0, 4, size=(rows, width)) / 4).astype(np.float32)  # many ties
        src = rng.integers(0, 12, size=rows)
        targets = sorted(set(rng.integers(0, n, size=8).tolist()))
        real = (ids.ravel() >= 0) & (ids.ravel() < n)
        want = _best_source(
            ids.ravel()[real],
            scores.ravel()[real],
            np.repeat(src, width)[real],
            np.asarray(targets),
        )
        assert _row_sources(ids, scores, src, targets) == want
        assert rows < 8 or want


def test_bench_compares_rank_with_an_earlier_revision(tmp_path: Path) -> None:
    """The tiny run of ``bench/recommend_scale.py --rank-before``: both codes on the same requests
    (here HEAD's and the working tree's), every kind timed, no answer differing."""
    out_json = tmp_path / "scale.json"
    out = quick(
        "recommend_scale.py",
        "--serving-only",
        "--serving-components",
        "itemknn,trending",
        "--requests",
        "30",
        "--rank-before",
        "HEAD",
        "--json",
        str(out_json),
    )
    assert "Bundle.rank now against HEAD (same process, same requests)" in out
    before = json.loads(out_json.read_text())["serving"]["rank_before"]
    assert list(before) == ["storefront", "HOME", "cold", "PRODUCT", "CART"]
    for kind in before.values():
        assert kind["requests"] == 30 and kind["answers_differ"] == 0
        assert kind["now_p50_us"] > 0 and kind["before_p50_us"] > 0 and kind["speedup"] > 0


def test_bench_refuses_an_unknown_revision() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "recommend_scale.py"),
            "--quick",
            "--serving-only",
            "--rank-before",
            "no-such-revision",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "--rank-before: cannot read recommend/serving.py at no-such-revision" in proc.stderr
    assert "Traceback" not in proc.stderr and "generating" not in proc.stderr


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python -m tests.recommend.test_rank_differential --record")
    ANSWERS.write_text(json.dumps(answers(), separators=(",", ":")) + "\n")
    print(f"recorded {ANSWERS}")
