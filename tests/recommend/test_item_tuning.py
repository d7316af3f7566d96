"""PRODUCT and CART blend weights tuned on validation by the item-to-item protocol: never worse than
the documented defaults on validation, blind to the test split, deterministic, stored in the model
and reported; the defaults stay when validation cannot tell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommend import evaluate, protocol, synthetic
from recommend.components import make
from recommend.data import Interactions
from recommend.hybrid import (
    ITEM_SCENARIOS,
    ITEM_WEIGHTS,
    MIN_ITEM_USERS,
    Hybrid,
    item_parts,
    item_queries,
    tune_item_weights,
)
from recommend.report import markdown

ALGORITHMS = ["popularity", "itemknn", "content", "together"]


def data() -> Interactions:
    return synthetic.generate(users=240, items=70, groups=4, seed=5)


@pytest.fixture(scope="module")
def report() -> evaluate.Report:
    return evaluate.run(data(), ALGORITHMS, seed=3, resamples=200, keep_model=True)


def test_tuned_weights_are_at_least_the_defaults_on_validation(report: evaluate.Report) -> None:
    assert set(report.item_tunings) == set(ITEM_SCENARIOS)
    for scenario, t in report.item_tunings.items():
        assert t.tuned and t.users >= MIN_ITEM_USERS and t.reason == ""
        assert t.default == ITEM_WEIGHTS[scenario]
        assert set(t.weights) == set(ITEM_WEIGHTS[scenario])  # the component names stay
        assert t.validation_ndcg is not None and t.default_validation_ndcg is not None
        assert t.validation_ndcg >= t.default_validation_ndcg  # by construction
        assert t.test_users > 0 and t.test_ndcg is not None and t.default_test_ndcg is not None
    # The model carries them; the report shows them.
    assert report.model is not None
    for scenario, t in report.item_tunings.items():
        assert report.model.weights[scenario] == t.weights
    body = report.to_json()["scenarios"]
    assert body["PRODUCT"]["weights"] == report.item_tunings["PRODUCT"].weights
    assert body["CART"]["default_weights"] == ITEM_WEIGHTS["CART"]
    text = markdown(report)
    assert "PRODUCT weights (tuned on validation" in text and "CART weights" in text


def test_the_same_seed_gives_the_same_weights(report: evaluate.Report) -> None:
    again = evaluate.run(data(), ALGORITHMS, seed=3, resamples=200)
    for scenario in ITEM_SCENARIOS:
        assert again.item_tunings[scenario].row() == report.item_tunings[scenario].row()


def test_the_test_split_is_never_read_while_tuning(report: evaluate.Report) -> None:
    # Given the same data with every held-out (user, item) pair renamed to an item of its own
    original = data()
    h = protocol.split(original)
    f = original.frame.copy()
    held = np.array([i in h.test.get(u, ()) for u, i in zip(f["user"], f["item"], strict=True)])
    renamed = f["user"].astype(str) + "/" + f["item"].astype(str)
    codes = pd.factorize(renamed[held])[0]
    f.loc[held, "item"] = [str(100_000 + c) for c in codes]  # after every real id
    scrambled = Interactions(f, original.item_text, original.item_category, "scrambled")
    h2 = protocol.split(scrambled)
    pd.testing.assert_frame_equal(h2.train.frame, h.train.frame)  # training split unchanged
    assert h2.test != h.test
    # When the experiment runs on it
    other = evaluate.run(scrambled, ALGORITHMS, seed=3, resamples=200)
    # Then the weights and every validation figure are the same; only the test figures moved
    for scenario in ITEM_SCENARIOS:
        a, b = report.item_tunings[scenario], other.item_tunings[scenario]
        assert (a.weights, a.users, a.validation_ndcg, a.default_validation_ndcg) == (
            b.weights,
            b.users,
            b.validation_ndcg,
            b.default_validation_ndcg,
        )
        assert b.test_ndcg == 0.0 and b.default_test_ndcg == 0.0  # held-out items unknown now
    assert report.hybrid_weights == other.hybrid_weights


def fitted(train: protocol.TrainSet, names: list[str]) -> dict[str, object]:
    return {n: make(n).fit(train) for n in names}


def test_defaults_stay_when_validation_cannot_tell() -> None:
    d = data()
    v = protocol.split(protocol.split(d).train)
    vtrain = protocol.build(v.train)
    users = list(v.test)
    rel, n_rel = evaluate._relevance(vtrain, users, v.test)
    parts = fitted(vtrain, ["itemknn", "content", "together"])
    few = tune_item_weights(
        parts,
        vtrain,
        v.train,
        users[:5],
        rel[:5],
        n_rel[:5],
        10,
        "PRODUCT",  # type: ignore[arg-type]
    )
    assert not few.tuned and few.weights == ITEM_WEIGHTS["PRODUCT"] and "only 5" in few.reason
    one = tune_item_weights(
        fitted(vtrain, ["itemknn"]),
        vtrain,
        v.train,
        users,
        rel,
        n_rel,
        10,
        "CART",  # type: ignore[arg-type]
    )
    assert not one.tuned and one.weights == ITEM_WEIGHTS["CART"] and "two" in one.reason
    # An experiment with no item-to-item signal keeps the defaults in the model.
    r = evaluate.run(d, ["popularity", "ease"], seed=3, resamples=100, keep_model=True)
    assert r.model is not None
    assert {s: r.model.weights[s] for s in ITEM_SCENARIOS} == ITEM_WEIGHTS
    assert all(t.test_users == 0 and not t.tuned for t in r.item_tunings.values())


def test_queries_are_the_last_item_or_the_last_basket() -> None:
    from recommend.data import make_interactions

    d = make_interactions(
        ["u", "u", "u", "u", "w"],
        ["a", "b", "c", "d", "a"],
        [1.0, 2.0, 3.0, 3.0, 1.0],
        baskets=["x", "y", "z", "z", "q"],
    )
    t = protocol.build(d)
    ix = t.item_index
    assert item_queries(d, t, ["u", "w", "nobody"], "PRODUCT") == [[ix["d"]], [ix["a"]], []]
    assert item_queries(d, t, ["u", "w"], "CART") == [sorted([ix["c"], ix["d"]]), [ix["a"]]]


def test_the_model_serves_with_its_scenario_weights(report: evaluate.Report) -> None:
    assert report.model is not None
    content_only = {"itemknn": 0.0, "together": 0.0, "content": 1.0}
    m = report.model
    model = Hybrid(m.train, m.components, {**m.weights, "PRODUCT": content_only})
    item = model.train.items[0]
    q = [model.train.item_index[item]]
    got = model.recommend(recent=[item], scenario="PRODUCT", k=5)
    raw = item_parts(model.components, q)["content"]
    raw[q] = -np.inf
    want = [model.train.items[j] for j in np.argsort(-raw, kind="stable")[:5]]
    assert got == want
