"""``bench/recommend_scale.py --quick`` keeps working, and the batched top-k precompute it measures
(recommend/precompute.py) gives the evaluation's top-k lists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommend import synthetic
from recommend.components import DEFAULT_ALGORITHMS, make
from recommend.precompute import precompute_top, select_top
from recommend.protocol import build, top_k
from tests.bench.test_bench_quick import ROOT, quick


def test_quick_run(tmp_path: Path) -> None:
    out_json = tmp_path / "scale.json"
    out = quick("recommend_scale.py", "--json", str(out_json))
    assert re.search(r"^\| component \| fit s \|", out, re.M), out
    assert re.search(
        r"^ratio \(our top-k / plain argpartition top-k, same scores\): min ", out, re.M
    )
    assert "EASE probe:" in out
    data = json.loads(out_json.read_text())
    assert data["size"] == {"users": 600, "items": 300, "interactions": 12_000}
    names = [r["component"] for r in data["results"]]
    assert names == [a for a in DEFAULT_ALGORITHMS if a != "ease"]
    for r in data["results"]:
        assert r["seen_in_lists"] == 0
        assert r["ratio"] is not None and r["ratio"] > 0
        assert r["filled"] == 1.0  # 300 items, nobody saw 250 of them
        assert r["lists_mb"] == pytest.approx(600 * 50 * 8 / 2**20, abs=0.05)
    assert [s["items"] for s in data["ease_probe"]["sizes"]] == [100, 200]
    # The serving bundle: built, loaded and ranked in the same run.
    assert "Serving bundle (HOME, known shopper, 3 recent items, a filter, k = 10)" in out
    assert re.search(r"^\| fit s \| build s \(shoppers \+ products\) \| blob MB \|", out, re.M), out
    sv = data["serving"]
    assert sv["components"] == ["itemknn", "als", "content", "together", "trending"]
    assert sv["build_shoppers_s"] + sv["build_products_s"] <= sv["build_s"]
    assert sv["requests"] > 0 and sv["rank_p50_us"] > 0 and sv["baseline_p50_us"] > 0
    assert sv["rank_ratio"] is not None and sv["rank_p99_us"] >= sv["rank_p50_us"]
    assert 0 < sv["compressed_blob_mb"] <= sv["blob_mb"] and sv["memory_mb"] > 0
    assert sv["full_answers"] == 1.0  # a filter leaving ~70 % of 300 products still fills 10


def test_serving_only_skips_the_components(tmp_path: Path) -> None:
    out_json = tmp_path / "scale.json"
    out = quick(
        "recommend_scale.py",
        "--serving-only",
        "--serving-components",
        "itemknn,trending",
        "--requests",
        "50",
        "--json",
        str(out_json),
    )
    data = json.loads(out_json.read_text())
    assert data["results"] == [] and data["ease_probe"] is None
    assert data["serving"]["components"] == ["itemknn", "trending"]
    assert "| component | fit s |" not in out


def test_ease_by_name_and_sizes(tmp_path: Path) -> None:
    out_json = tmp_path / "scale.json"
    quick(
        "recommend_scale.py",
        "--components",
        "ease(l2=50),popularity",
        "--users",
        "200",
        "--items",
        "80",
        "--interactions",
        "3000",
        "--k",
        "10",
        "--ease-sizes",
        "",
        "--json",
        str(out_json),
    )
    data = json.loads(out_json.read_text())
    assert [r["component"] for r in data["results"]] == ["ease(l2=50)", "popularity"]
    assert data["ease_probe"] is None
    assert data["k"] == 10


@pytest.mark.parametrize(
    "args",
    [
        ["--components", "nope"],
        ["--components", "als(factors=x"],
        ["--ease-sizes", "a,b"],
        ["--ease-sizes", "0"],
        ["--users", "0"],
        ["--k", "0"],
        ["--interactions", "10", "--users", "100"],
        ["--serving-components", "nope"],
        ["--requests", "0"],
    ],
)
def test_bad_arguments_fail_clearly(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "recommend_scale.py"), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "generating" not in proc.stderr  # refused before building any data


class Dense:
    """A scorer over a fixed matrix."""

    def __init__(self, s: np.ndarray) -> None:
        self.s = s

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.s[users].copy()


def test_precompute_equals_evaluation_top_k_in_any_batch() -> None:
    rng = np.random.default_rng(1)
    s = rng.random((37, 60)).astype(np.float32)
    seen = sp.random(37, 60, density=0.2, format="csr", random_state=2, dtype=np.float32)
    want = top_k(s, 10, seen)
    for batch in (1, 5, 37, None):
        got = precompute_top(Dense(s), seen, k=10, batch=batch)
        assert got.items.dtype == np.int32 and got.scores.dtype == np.float32
        np.testing.assert_array_equal(got.items, want)
        np.testing.assert_array_equal(got.scores, np.take_along_axis(s, want, axis=1))
        assert set(got.seconds) == {"score", "select"}
    # No list holds a seen item.
    for u in range(37):
        assert not set(got.items[u]) & set(seen[u].indices)


def test_ties_in_a_list_ordered_by_item_index_and_empty_slots() -> None:
    s = np.array([[1, 3, 3, 2, 3, 0]], dtype=np.float32)
    ids, vals = select_top(s.copy(), 4)
    assert ids.tolist() == [[1, 2, 4, 3]]
    assert vals.tolist() == [[3, 3, 3, 2]]
    # NaN never beats a number; -inf (excluded) leaves the slot empty.
    s = np.array([[np.nan, 0.5, -np.inf, 0.2]], dtype=np.float32)
    ids, vals = select_top(s, 4)
    assert ids.tolist() == [[1, 3, -1, -1]]
    assert vals[0, :2].tolist() == pytest.approx([0.5, 0.2])
    assert np.all(np.isneginf(vals[0, 2:]))
    # A user who saw everything gets an empty list, not an error.
    seen = sp.csr_matrix(np.ones((1, 4), np.float32))
    got = precompute_top(Dense(np.ones((1, 4), np.float32)), seen, k=3)
    assert got.items.tolist() == [[-1, -1, -1]]


def test_precompute_on_a_fitted_component_matches_evaluation() -> None:
    train = build(synthetic.generate(users=120, items=60, seed=3))
    comp = make("ease(l2=20)").fit(train)
    users = np.arange(train.n_users)
    want = top_k(comp.scores(users), 20, train.binary())
    got = precompute_top(comp, train.binary(), k=20, batch=25)
    np.testing.assert_array_equal(got.items, want)
    assert got.nbytes == 120 * 20 * 8
