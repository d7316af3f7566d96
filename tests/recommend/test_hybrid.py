"""The hybrid: weight search on validation, the experiment runner, cold start, artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommend import evaluate, synthetic
from recommend.hybrid import ArtifactError, Hybrid, normalise, tune_weights


def test_normalise_ignores_excluded_items_and_constant_rows() -> None:
    s = np.array([[10.0, 0.0, 5.0, 100.0], [3.0, 3.0, 3.0, 3.0]])
    ex = sp.csr_matrix(np.array([[0, 0, 0, 1], [0, 0, 0, 0]]))
    out = normalise(s, ex)
    assert out.tolist() == [[1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_weight_search_starts_from_the_best_single_and_only_improves() -> None:
    rel = np.array([[True, False, False, False], [False, True, False, False]])
    n_rel = np.array([1, 1])
    good = np.array([[1.0, 0.0, 0.5, 0.2], [0.0, 1.0, 0.5, 0.2]], np.float32)
    noise = np.array([[0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 1.0, 0.5]], np.float32)
    t = tune_weights({"noise": noise, "good": good}, rel, n_rel, sp.csr_matrix((2, 4)), 1)
    assert t.best_single == "good" and t.best_single_ndcg == 1.0
    assert t.hybrid_ndcg == 1.0 and t.weights["good"] > 0 and t.weights["noise"] == 0.0


@pytest.fixture(scope="module")
def report() -> evaluate.Report:
    data = synthetic.generate(users=300, items=80, groups=4, seed=2)
    return evaluate.run(
        data, ["popularity", "itemknn", "ease", "session", "content"], seed=1, keep_model=True
    )


def test_experiment_on_known_structure(report: evaluate.Report) -> None:
    pop = report.result("popularity")
    hyb = report.result("hybrid")
    assert [r.name for r in report.results] == [
        "popularity",
        "itemknn",
        "ease",
        "session",
        "content",
        "hybrid",
    ]
    assert report.tuning is not None
    assert report.tuning.hybrid_ndcg >= report.tuning.best_single_ndcg  # by construction
    assert hyb.ndcg > pop.ndcg and report.ci[1] > 0  # the structure is there to be found
    assert set(report.tuned_params) == {"itemknn", "ease", "session"}
    j = report.to_json()
    assert j["bootstrap"]["excludes_zero"] is True and j["bootstrap"]["resamples"] == 2000
    assert j["results"][0]["algorithm"] == "popularity" and "ndcg@10" in j["results"][0]


def test_the_same_seed_gives_the_same_numbers(report: evaluate.Report) -> None:
    data = synthetic.generate(users=300, items=80, groups=4, seed=2)
    again = evaluate.run(data, ["popularity", "itemknn", "ease", "session", "content"], seed=1)
    assert [r.row() | {"seconds": 0} for r in again.results] == [
        r.row() | {"seconds": 0} for r in report.results
    ]
    assert again.ci == report.ci


def test_cold_start_and_session_and_artifacts(report: evaluate.Report, tmp_path: Path) -> None:
    model = report.model
    assert model is not None
    t = model.train
    someone = str(t.users[0])
    mine = {str(t.items[j]) for j in t.matrix[0].indices}
    known = model.recommend(user=someone, k=5)
    assert len(known) == 5 and not set(known) & mine
    cold = model.recommend(user="nobody", k=5)
    assert len(cold) == 5  # trending for a stranger
    item = str(t.items[0])
    after_view = model.recommend(user="nobody", recent=[item], k=5)
    assert after_view != cold and item not in after_view  # the session changed the answer
    assert len(model.recommend(scenario="PRODUCT", recent=[item], k=3)) == 3
    text = t.item_text[0]
    assert model.similar_to_text(text, k=3)
    assert model.recommend(user="nobody", recent=["no-such-item"], k=3) == cold[:3]

    path = tmp_path / "model.bin"
    digest = model.save(path)
    assert len(digest) == 64
    loaded = Hybrid.load(path)
    assert loaded.recommend(user=someone, k=5) == known
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(ArtifactError, match="corrupt"):
        Hybrid.load(path)
    path.write_bytes(b"hello")
    with pytest.raises(ArtifactError, match="not a Precis"):
        Hybrid.load(path)
    with pytest.raises(ArtifactError, match="cannot read"):
        Hybrid.load(tmp_path / "missing.bin")


def test_too_little_data_is_a_clear_error() -> None:
    from recommend.data import make_interactions

    tiny = make_interactions(["a", "a", "b"], ["x", "y", "x"], [1.0, 2.0, 3.0])
    with pytest.raises(evaluate.EvaluationError, match="nobody to evaluate"):
        evaluate.run(tiny)


def test_the_same_algorithm_twice_is_reported_by_its_spec() -> None:
    data = synthetic.generate(users=120, items=40, groups=3, seed=4)
    r = evaluate.run(data, ["ease(l2=50)", "ease( l2=500 )"], tune=False, resamples=1000)
    assert [x.name for x in r.results] == ["popularity", "ease(l2=50)", "ease(l2=500)", "hybrid"]


def test_without_validation_users_the_hybrid_is_popularity() -> None:
    from recommend.data import make_interactions
    from recommend.report import markdown

    # Five users with exactly 5 items: evaluated, but 4 training pairs leave no validation user.
    users = [f"u{u}" for u in range(5) for _ in range(5)]
    items = [str((u + j) % 7) for u in range(5) for j in range(5)]
    times = [float(j) for _ in range(5) for j in range(5)]
    r = evaluate.run(make_interactions(users, items, times), ["itemknn"], resamples=1000)
    assert r.tuning is None and r.hybrid_weights == {"popularity": 1.0}
    assert r.result("hybrid").ndcg == r.result("popularity").ndcg
    assert "the hybrid is popularity alone" in markdown(r)


def test_tuning_never_sees_the_test_split() -> None:
    """Replace every held-out item by an item nobody trained on: the training split, hence every
    tuned parameter and blend weight, must stay exactly the same; only the test numbers move."""
    from recommend import protocol

    data = synthetic.generate(users=300, items=80, groups=4, seed=2)
    h = protocol.split(data)
    f = data.frame.copy()
    held = [i in h.test.get(u, ()) for u, i in zip(f["user"], f["item"], strict=True)]
    f.loc[held, "item"] = (f.loc[held, "item"].astype(int) + 100_000).astype(str)
    other = type(data)(f, data.item_text, data.item_category, "changed test split")
    specs = ["popularity", "itemknn", "ease", "session", "content"]
    a = evaluate.run(data, specs, seed=1, resamples=1000)
    b = evaluate.run(other, specs, seed=1, resamples=1000)
    assert a.hybrid_weights == b.hybrid_weights and a.tuned_params == b.tuned_params
    assert a.tuning is not None and b.tuning is not None
    assert a.tuning.hybrid_ndcg == b.tuning.hybrid_ndcg
    assert a.result("hybrid").ndcg > 0 and b.result("hybrid").ndcg == 0.0  # nothing to hit now
