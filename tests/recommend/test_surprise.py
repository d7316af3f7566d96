"""Surprise algorithms: top-N scores for all items come from one vectorised pass, and equal what
Surprise's own ``estimate`` gives pair by pair."""

from __future__ import annotations

import numpy as np
import pytest

from recommend import protocol
from recommend.components import make
from recommend.components.surprise_models import SurpriseComponent
from recommend.data import make_interactions


def rated(seed: int = 0) -> protocol.TrainSet:
    """25 users rating 3-8 of 40 items: sparse enough that some item pairs share no user."""
    rng = np.random.default_rng(seed)
    users, items, times, ratings = [], [], [], []
    for u in range(25):
        for i in rng.choice(40, size=int(rng.integers(3, 9)), replace=False):
            users.append(f"u{u}")
            items.append(f"i{i}")
            times.append(float(len(times)))
            ratings.append(float(rng.uniform(1, 5)))
    return protocol.build(make_interactions(users, items, times, ratings, ratings))


SPECS = [
    "svd(n_factors=5,n_epochs=10)",
    "svd(n_factors=5,n_epochs=10,biased=false)",
    "svdpp(n_factors=4,n_epochs=5)",
    "nmf(n_factors=4,n_epochs=10)",
    "nmf(n_factors=4,n_epochs=10,biased=true)",
    "baselineonly",
    "knnwithmeans(user_based=true,sim=cosine)",
    "knnwithmeans(user_based=false,sim=pearson,k=3)",
    "knnwithmeans(user_based=true,sim=pearson,k=3,min_k=2)",
    "knnbaseline(user_based=false,sim=pearson_baseline,k=4)",
    "knnbaseline(user_based=true,sim=pearson_baseline)",
    "knnbaseline(user_based=true,sim=cosine,k=2)",
    "slopeone",
]


@pytest.mark.parametrize("spec", SPECS)
def test_vectorised_scores_equal_surprise_estimates(spec: str) -> None:
    t = rated()
    c = make(spec).fit(t)
    assert isinstance(c, SurpriseComponent)
    users = np.arange(t.n_users)
    scores = c.scores(users)
    assert scores.shape == (t.n_users, t.n_items)
    expected = np.empty_like(scores)
    for u in users:
        for i in range(t.n_items):
            est = c.algo.estimate(int(c.u_inner[u]), int(c.i_inner[i]))
            expected[u, i] = est[0] if isinstance(est, tuple) else est
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_rating_predictions_are_clipped_to_the_scale() -> None:
    t = rated()
    c = make("svd(n_factors=5,n_epochs=30)").fit(t)
    assert isinstance(c, SurpriseComponent)
    lo, hi = c.scale
    pred = c.ratings_for(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 3]))
    assert ((pred >= lo) & (pred <= hi)).all()
