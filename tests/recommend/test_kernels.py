"""The compiled ranking kernel (recommend/kernels.py): compiled when a bundle loads, one
compilation for every request. Its answers are pinned by test_rank_differential.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from recommend import kernels
from recommend.serving import Bundle
from tests.bench.test_bench_quick import ROOT
from tests.recommend.test_rank_differential import random_bundle, random_requests


def test_the_kernel_is_compiled_when_a_bundle_loads_and_no_request_compiles_it_again() -> None:
    # Given a bundle just loaded
    b = Bundle.loads(random_bundle(11).dumps())
    # Then the kernel already has machine code for the dtypes requests pass
    compiled = list(kernels.rank_pool.signatures)
    assert len(compiled) == 1
    # When requests of every kind are ranked (HOME, EMAIL, cold, PRODUCT, CART, caps on / off)
    got = [b.rank(req, view) for req, view in random_requests(b, 11, 200)]
    # Then none of them compiled another version
    assert any(got)
    assert kernels.rank_pool.signatures == compiled


def test_diversity_cap() -> None:
    assert kernels.diversity_cap(0.5, 10) == 5
    assert kernels.diversity_cap(0.34, 10) == 4
    assert kernels.diversity_cap(0.0, 10) == 1
    assert kernels.diversity_cap(1.0, 10) == -1
    assert kernels.diversity_cap(float("inf"), 10) == -1
    assert kernels.diversity_cap(float("nan"), 10) == -1


def test_walk_takes_the_allowed_items_in_order_and_says_where_it_stopped() -> None:
    order = np.array([3, 0, 2, 1, 4], np.int32)
    ok = np.array([False, False, True, True, True, False])
    items, pos = kernels._walk(order, ok, 2, 0)
    assert items.tolist() == [3, 2] and pos == 3
    items, pos = kernels._walk(order, ok, 5, 3)
    assert items.tolist() == [4] and pos == 5
    items, pos = kernels._walk(order, ok, 0, 0)
    assert items.tolist() == [] and pos == 0


def test_without_a_writable_cache_the_kernels_still_import_and_compile_in_memory() -> None:
    # Given numba finding nowhere to keep its cache (a read-only install without NUMBA_CACHE_DIR
    # and without a writable home), where ``cache=True`` alone raises at import
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}
    # When the module is imported
    out = subprocess.run(
        [sys.executable, "-c", "from recommend import kernels; print(kernels.CACHED)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # Then it imports, with the kernels compiled in memory (not cached)
    assert out.stdout.strip() == "False"
