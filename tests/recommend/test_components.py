"""Each component on small data where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from recommend import protocol
from recommend.components import REGISTRY, SpecError, make, session_scores, split_specs
from recommend.data import make_interactions

DAY = 86400.0


def two_groups() -> protocol.TrainSet:
    """10 users buy a1..a4, 15 users buy b1..b4 (B is more popular); user x bought a1..a3.
    Every personal component must put a4 first for x; popularity puts a B item first."""
    users, items, times = [], [], []
    for u in range(10):
        for j, it in enumerate(["a1", "a2", "a3", "a4"]):
            users.append(f"A{u}")
            items.append(it)
            times.append(u * 10 + j)
    for u in range(15):
        for j, it in enumerate(["b1", "b2", "b3", "b4"]):
            users.append(f"B{u}")
            items.append(it)
            times.append(u * 10 + j)
    for j, it in enumerate(["a1", "a2", "a3"]):
        users.append("x")
        items.append(it)
        times.append(500 + j)
    text = {f"a{i}": "red ceramic mug" for i in range(1, 5)} | {
        f"b{i}": "blue garden chair" for i in range(1, 5)
    }
    return protocol.build(make_interactions(users, items, times, item_text=text))


def best_for_x(spec: str) -> str:
    t = two_groups()
    x = np.array([t.user_index["x"]])
    c = make(spec).fit(t)
    top = protocol.top_k(c.scores(x), 1, t.binary()[x])[0, 0]
    return str(t.items[top])


@pytest.mark.parametrize(
    "spec",
    [
        "itemknn",
        "ease",
        "session",
        "content",
        "together",
        "als(factors=4,iterations=30)",
        "bpr(factors=8,iterations=200,learning_rate=0.05)",
        "knnwithmeans(user_based=false,sim=cosine)",
    ],
)
def test_personal_components_find_the_missing_item_of_the_group(spec: str) -> None:
    assert best_for_x(spec) == "a4"


def test_popularity_does_not_know_the_user() -> None:
    assert best_for_x("popularity") == "b1"  # ties between b1..b4 broken by item id


def test_trending_prefers_recent_heat_and_ranks_within_a_category() -> None:
    users, items, times = [], [], []
    for u in range(5):  # 'old' bought by five users 100 days ago
        users.append(f"o{u}")
        items.append("old")
        times.append(0.0)
    for u in range(2):  # 'new' bought by two users just now
        users.append(f"n{u}")
        items.append("new")
        times.append(100 * DAY)
    users.append("n0")
    items.append("side")
    times.append(100 * DAY - 30 * DAY)
    data = make_interactions(
        users, items, times, item_category={"old": "mugs", "new": "lamps", "side": "mugs"}
    )
    t = protocol.build(data)
    one = np.array([0])
    trend = make("trending(half_life_days=7)").fit(t)
    pop = make("popularity").fit(t)
    assert t.items[protocol.top_k(trend.scores(one), 1)[0, 0]] == "new"
    assert t.items[protocol.top_k(pop.scores(one), 1)[0, 0]] == "old"
    mugs = trend.in_category("mugs")  # type: ignore[attr-defined]
    assert [t.items[j] for j in protocol.top_k(mugs, 3)[0] if j >= 0] == ["side", "old"]


def test_bought_together_uses_lift_from_baskets() -> None:
    # x and y share 3 baskets; z is in every basket (popular, no lift); w once with x.
    users, items, times, baskets = [], [], [], []
    for b, content in enumerate(
        [
            ["x", "y", "z"],
            ["x", "y", "z"],
            ["x", "y", "z"],
            ["z", "q"],
            ["z", "r"],
            ["z", "s"],
            ["x", "w", "z"],
        ]
    ):
        for it in content:
            users.append(f"u{b}")
            items.append(it)
            times.append(float(b))
            baskets.append(f"o{b}")
    t = protocol.build(make_interactions(users, items, times, baskets=baskets))
    c = make("together").fit(t)
    s = c.with_items([t.item_index["x"]])  # type: ignore[attr-defined]
    s[t.item_index["x"]] = -np.inf
    assert t.items[int(np.argmax(s))] == "y"
    assert s[t.item_index["y"]] > s[t.item_index["w"]] > 0
    assert s[t.item_index["z"]] == 0.0  # in every basket: lift 1, no signal


def test_content_finds_similar_text_for_a_new_product() -> None:
    t = two_groups()
    c = make("content").fit(t)
    s = c.text_scores("a large red mug")  # type: ignore[attr-defined]
    assert {t.items[j] for j in np.flatnonzero(s > 0)} == {"a1", "a2", "a3", "a4"}
    assert make("content").fit(protocol.build(make_interactions(["u"], ["i"], [0.0]))).scores(
        np.array([0])
    ).tolist() == [[0.0]]  # no text at all: no signal, no crash


def test_session_signal_follows_the_last_items_without_retraining() -> None:
    t = two_groups()
    sim = make("itemknn").fit(t).sim  # type: ignore[attr-defined]
    a1, b1 = t.item_index["a1"], t.item_index["b1"]

    def best(recent: list[int]) -> str:
        s = session_scores(sim, recent)
        s[recent] = -np.inf
        return str(t.items[int(np.argmax(s))])

    assert best([a1]).startswith("a")
    assert best([b1]).startswith("b")
    assert best([a1, b1]).startswith("b")  # the newest counts most
    assert not session_scores(sim, []).any()
    assert not session_scores(sim, [-1, 10_000]).any()  # unknown items are skipped


def test_specs_parse_and_fail_clearly() -> None:
    assert split_specs("ease(l2=300),svd , knnbaseline(user_based=true,sim=pearson)") == [
        "ease(l2=300)",
        "svd",
        "knnbaseline(user_based=true,sim=pearson)",
    ]
    assert make("ease(l2=300)").params == {"l2": 300}
    assert make("svd++").name == "svdpp"
    k = make("knnbaseline(user_based=true,sim=pearson)")
    assert k.params["user_based"] is True and k.params["sim"] == "pearson"
    for bad, message in [
        ("nope", "unknown algorithm 'nope'"),
        ("ease(l2)", "use key=value"),
        ("ease(l2=1", "unbalanced"),
        ("ease(lambda=1)", "unexpected keyword"),
        ("knnbaseline(sim=jaccard)", "sim must be one of"),
        ("ease!!", "bad algorithm"),
    ]:
        with pytest.raises(SpecError, match=message.replace("(", r"\(")):
            make(bad) if "(" not in bad or bad.count("(") == bad.count(")") else split_specs(bad)
    assert set(REGISTRY) >= {"svd", "svdpp", "nmf", "knnbaseline", "knnwithmeans", "slopeone"}
