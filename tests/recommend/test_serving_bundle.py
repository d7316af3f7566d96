"""The serving bundle (recommend/serving.py): built from a real trained hybrid on synthetic data,
checked against the hybrid it came from (differential), round-tripped and refused when damaged, and
ranked under views, filters, sessions and consent; plus the candidate row a training run writes."""

from __future__ import annotations

import hashlib
import io
import math
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from domain.db import Database
from domain.recommend import service
from domain.recommend.models import ModelVersion
from domain.settings import Settings
from recommend import evaluate, synthetic
from recommend.components.content import Content
from recommend.components.together import BoughtTogether
from recommend.hybrid import ArtifactError, Hybrid
from recommend.serving import MAGIC, Bundle, HomeBlend, Ranked, RankRequest, Recent, View
from tests.recommend.models_world import fast, seed

SPECS = ["popularity", "itemknn", "content", "together", "trending"]
TOP_N = 20


@pytest.fixture(scope="module")
def hybrid() -> Hybrid:
    data = synthetic.generate(users=300, items=80, groups=4, seed=2)
    report = evaluate.run(data, SPECS, seed=1, keep_model=True, resamples=1000)
    assert report.model is not None
    return report.model


@pytest.fixture(scope="module")
def bundle(hybrid: Hybrid) -> Bundle:
    steps: list[tuple[str, int, int]] = []
    b = Bundle.build(hybrid, top_n=TOP_N, progress=lambda s, d, t: steps.append((s, d, t)))
    assert {s for s, _, _ in steps} == {"precomputing lists"}
    assert steps[-1][1] == steps[-1][2] == hybrid.train.n_users + hybrid.train.n_items
    return b


def view(b: Bundle, allowed: np.ndarray | None = None, share: float = 0.5, cats: int = 4) -> View:
    n = len(b.items)
    return View(
        allowed=np.ones(n, bool) if allowed is None else allowed,
        category=(np.arange(n) % cats).astype(np.int32),
        brand=np.full(n, -1, np.int32),
        max_share=share,
    )


def keys(answer: list[Ranked]) -> list[str]:
    return [r.item for r in answer]


def check_answer(answer: list[Ranked]) -> None:
    scores = [r.score for r in answer]
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(set(keys(answer))) == len(answer)


def history(hybrid: Hybrid, user: int) -> set[str]:
    t = hybrid.train
    return {str(t.items[j]) for j in t.matrix[user].indices}


# -- building: the bundle holds what the hybrid would answer --------------------------------------


def test_home_lists_equal_the_hybrids_top(hybrid: Hybrid, bundle: Bundle) -> None:
    t = hybrid.train
    users = np.arange(0, t.n_users, 7)
    want = hybrid.top(users, TOP_N)
    scores = hybrid.scores(users)
    got = bundle.user_top_ids[users]
    for r, u in enumerate(users):
        w = want[r][want[r] >= 0]
        g = got[r][got[r] >= 0]
        assert len(g) == len(w)
        # Same scores in the same order; the same items except where scores tie at the cut.
        np.testing.assert_allclose(scores[r][g], scores[r][w], rtol=1e-6)
        last = scores[r][w[-1]]
        strict = scores[r][w] > last
        assert list(g[strict]) == list(w[strict])
        assert not set(g.tolist()) & set(t.matrix[u].indices.tolist())  # training items excluded
        s = bundle.user_top_scores[u][: len(g)]
        assert s[0] == pytest.approx(1.0) and np.all(s >= 0) and np.all(np.diff(s) <= 1e-7)


def test_the_fast_home_blend_is_the_hybrids_blend(hybrid: Hybrid) -> None:
    users = np.arange(0, hybrid.train.n_users, 3)
    seen = hybrid.train.binary()[users].toarray() > 0
    weights = dict(hybrid.weights["HOME"])
    try:
        for home in (weights, {n: 0.5 + i for i, n in enumerate(hybrid.components)}):
            hybrid.weights["HOME"] = home
            want = hybrid.scores(users)
            got = HomeBlend(hybrid).scores(users)
            np.testing.assert_array_equal(got[~seen], want[~seen])  # bit for bit
            assert np.isnan(got[seen]).all()
    finally:
        hybrid.weights["HOME"] = weights


def test_item_lists_equal_the_hybrids_item_blend(hybrid: Hybrid, bundle: Bundle) -> None:
    content = hybrid.components["content"]
    together = hybrid.components["together"]
    assert isinstance(content, Content) and isinstance(together, BoughtTogether)
    for i in range(0, hybrid.train.n_items, 9):
        mix = hybrid._item_blend([i], hybrid.weights["PRODUCT"])
        mix[i] = -np.inf
        got = bundle.similar_ids[i][bundle.similar_ids[i] >= 0]
        np.testing.assert_allclose(bundle.similar_scores[i][: len(got)], mix[got], rtol=1e-5)
        assert i not in got
        best = np.sort(mix[mix > 0])[::-1][: len(got)]
        np.testing.assert_allclose(mix[got], best, rtol=1e-5)  # the best ones, best first
        cos = content.similar(i)
        got = bundle.content_ids[i][bundle.content_ids[i] >= 0]
        np.testing.assert_allclose(bundle.content_scores[i][: len(got)], cos[got], rtol=1e-5)
        lift = together.lift[i].toarray().ravel()
        got = bundle.together_ids[i][bundle.together_ids[i] >= 0]
        assert len(got) == min(TOP_N, int((lift > 0).sum()))
        np.testing.assert_allclose(bundle.together_scores[i][: len(got)], lift[got], rtol=1e-6)


def test_session_similarity_is_pruned_and_training_items_kept(
    hybrid: Hybrid, bundle: Bundle
) -> None:
    n = len(bundle.items)
    assert np.all(np.diff(bundle.sim_indptr) <= TOP_N)
    full = hybrid.item_similarity()
    sim = sp.csr_matrix((bundle.sim_data, bundle.sim_indices, bundle.sim_indptr), shape=(n, n))
    for i in range(0, n, 11):
        row = full[i].toarray().ravel()
        kept = sim[i].toarray().ravel()
        nz = kept > 0
        np.testing.assert_allclose(kept[nz], row[nz])
        assert nz.sum() == min(TOP_N, int((row > 0).sum()))
        if nz.any():
            assert kept[nz].min() >= np.sort(row)[::-1][nz.sum() - 1] - 1e-7
    train = sp.csr_matrix(
        (np.ones(len(bundle.train_indices)), bundle.train_indices, bundle.train_indptr),
        shape=(len(bundle.users), n),
    )
    assert (train != hybrid.train.binary()).nnz == 0


# -- serialisation ---------------------------------------------------------------------------------


def test_round_trip(hybrid: Hybrid, bundle: Bundle) -> None:
    blob = bundle.dumps()
    assert blob.startswith(MAGIC)
    assert Bundle.sha256_of(blob) == hashlib.sha256(blob[len(MAGIC) + 65 :]).hexdigest()
    again = Bundle.loads(blob)
    assert again.nbytes == bundle.nbytes > 0
    assert again.meta == bundle.meta and again.top_n == TOP_N
    for name in ("items", "users", "user_top_ids", "similar_scores", "trending_order", "idf"):
        np.testing.assert_array_equal(getattr(again, name), getattr(bundle, name))
    assert again.item_index == bundle.item_index and again.user_index == bundle.user_index
    v = view(bundle)
    user = str(hybrid.train.users[3])
    recent = (Recent(str(hybrid.train.items[5]), "view", 30.0),)
    for req in (
        RankRequest(user=user, k=7, recent=recent),
        RankRequest(k=7, recent=recent),
        RankRequest(scenario="CART", cart=[str(hybrid.train.items[2])], k=5),
    ):
        assert again.rank(req, v) == bundle.rank(req, v)
    text = hybrid.train.item_text[4]
    assert again.similar_to_text(text, 5, v) == bundle.similar_to_text(text, 5, v)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    body = buf.getvalue()
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def test_damaged_or_foreign_blobs_are_refused(hybrid: Hybrid, bundle: Bundle) -> None:
    blob = bundle.dumps()
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    cases = {
        "truncated": blob[: len(blob) // 2],
        "flipped": bytes(flipped),
        "header only": blob[: len(MAGIC) + 10],
        "empty": b"",
        "foreign": b"PK\x03\x04 hello",
        "a pickled model": hybrid.dumps(),
    }
    for name, data in cases.items():
        with pytest.raises(ArtifactError):
            Bundle.loads(data)
        assert name  # each case refused
    # A valid checksum over something that is not a bundle.
    with pytest.raises(ArtifactError, match="unreadable"):
        Bundle.loads(_npz(items=np.array(["1"])))
    body = b"not a zip at all"
    with pytest.raises(ArtifactError, match="unreadable"):
        Bundle.loads(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    # Object arrays would need pickle: refused, nothing run.
    with zipfile.ZipFile(io.BytesIO(blob[len(MAGIC) + 65 :])) as z:
        arrays = {n[:-4]: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}
    evil = dict(arrays, items=np.array([object()] * len(bundle.items), dtype=object))
    with pytest.raises(ArtifactError):
        Bundle.loads(_npz(**evil))
    # Well-formed arrays that do not fit together (an index past the catalogue).
    bad = dict(arrays, similar_ids=arrays["similar_ids"] + len(bundle.items))
    with pytest.raises(ArtifactError, match="inconsistent"):
        Bundle.loads(_npz(**bad))
    bad = dict(arrays, trending_order=np.zeros(len(bundle.items), np.int32))
    with pytest.raises(ArtifactError, match="inconsistent"):
        Bundle.loads(_npz(**bad))
    # The original still loads (nothing was changed by the refusals).
    assert Bundle.loads(blob).rank(RankRequest(k=3), view(bundle))


# -- request time ----------------------------------------------------------------------------------


def test_personal_answer_honours_view_exclude_k_and_history(hybrid: Hybrid, bundle: Bundle) -> None:
    t = hybrid.train
    rng = np.random.default_rng(0)
    allowed = rng.random(len(bundle.items)) < 0.5
    for u in range(0, t.n_users, 37):
        user = str(t.users[u])
        plain = bundle.rank(RankRequest(user=user, k=10), view(bundle))
        exclude = frozenset(keys(plain)[:3])
        got = bundle.rank(RankRequest(user=user, k=10, exclude=exclude), view(bundle, allowed))
        check_answer(got)
        assert len(got) == 10
        assert all(allowed[bundle.item_index[r.item]] for r in got)
        assert not exclude & set(keys(got))
        assert not history(hybrid, u) & set(keys(got))  # HOME: training items stay out
        per_cat = Counter(r.category for r in got)
        assert max(per_cat.values()) <= 5  # ceil(0.5 * 10)
        assert len(bundle.rank(RankRequest(user=user, k=3), view(bundle))) == 3
        assert bundle.rank(RankRequest(user=user, k=0), view(bundle)) == []


def test_personal_list_first_and_explained_by_history(hybrid: Hybrid, bundle: Bundle) -> None:
    t = hybrid.train
    u = 10
    user = str(t.users[u])
    got = bundle.rank(RankRequest(user=user, k=5), view(bundle, share=1.0))
    top = [str(bundle.items[j]) for j in bundle.user_top_ids[u][:5]]
    assert keys(got) == top  # no session, no caps: the precomputed list itself
    mine = history(hybrid, u)
    assert all(r.reason == "personal" for r in got)
    assert any(r.source for r in got)
    assert all(r.source in mine for r in got if r.source is not None)


def test_diversity_caps_and_their_relaxation(hybrid: Hybrid, bundle: Bundle) -> None:
    n = len(bundle.items)
    user = str(hybrid.train.users[0])
    # Everything but the answer's best item in one category: at most ceil(0.3 * 10) = 3 of it.
    one = View(np.ones(n, bool), np.zeros(n, np.int32), np.arange(n, dtype=np.int32), 0.3)
    got = bundle.rank(RankRequest(user=user, k=10), one)
    assert len(got) == 10  # relaxed: not enough other categories
    # Categories = the synthetic taste groups (the first word of an item's text names its group):
    # a shopper's list leans to their group; capped at 3 of 10 it spreads over the 4 groups.
    group = np.unique([t.split()[0] for t in hybrid.train.item_text], return_inverse=True)[1]
    group = group.astype(np.int32)
    none = np.full(n, -1, np.int32)
    free = View(np.ones(n, bool), group, none, 1.0)

    def lean(req: RankRequest) -> int:
        return max(Counter(r.category for r in bundle.rank(req, free)).values())

    # A shopper whose list leans most, and a visitor who just viewed two items of one group.
    leaning = max((RankRequest(user=str(u), k=10) for u in hybrid.train.users[:60]), key=lean)
    same = np.flatnonzero(group == 0)[:2]
    recent = tuple(Recent(str(bundle.items[j]), "view", 1.0) for j in same)
    for req in (leaning, RankRequest(k=10, recent=recent)):
        assert lean(req) > 3  # the caps have work to do
        got = bundle.rank(req, View(np.ones(n, bool), group, none, 0.3))
        check_answer(got)
        assert len(got) == 10 and max(Counter(r.category for r in got).values()) <= 3
        # The same cap on brands.
        got = bundle.rank(req, View(np.ones(n, bool), none, group, 0.3))
        assert len(got) == 10
        assert max(Counter(int(group[bundle.item_index[r.item]]) for r in got).values()) <= 3
    # A restrictive filter still gets k items when the view allows k (the pool is widened).
    allowed = np.zeros(n, bool)
    allowed[np.arange(0, n, 8)] = True
    got = bundle.rank(RankRequest(user=user, k=10), view(bundle, allowed))
    mine = history(hybrid, 0)
    want = min(10, sum(1 for j in np.flatnonzero(allowed) if str(bundle.items[j]) not in mine))
    assert len(got) == want and all(allowed[bundle.item_index[r.item]] for r in got)


def test_a_recent_view_changes_the_next_answer(hybrid: Hybrid, bundle: Bundle) -> None:
    t = hybrid.train
    v = view(bundle, share=1.0)
    u = 5
    user = str(t.users[u])
    mine = history(hybrid, u)
    viewed = next(str(t.items[j]) for j in range(t.n_items) if str(t.items[j]) not in mine)
    for who in (user, None):
        before = bundle.rank(RankRequest(user=who, k=10), v)
        recent = (Recent(viewed, "view", 5.0),)
        after = bundle.rank(RankRequest(user=who, k=10, recent=recent), v)
        check_answer(after)
        assert keys(after) != keys(before)
        assert viewed not in keys(after)
        because = [r for r in after if r.reason in ("viewed", "content")]
        assert because and all(r.source == viewed for r in because)
    # Newer and carted events weigh more: the newest item explains most of the answer.
    a, b = (str(t.items[j]) for j in (1, 2))
    older_cart = (Recent(b, "add_to_cart", 1.0), Recent(a, "view", 7200.0))
    got = bundle.rank(RankRequest(k=10, recent=older_cart), v)
    sources = Counter(r.source for r in got if r.reason == "viewed")
    assert sources and sources.most_common(1)[0][0] == b


def test_unknown_user_and_no_consent_get_the_anonymous_answer(
    hybrid: Hybrid, bundle: Bundle
) -> None:
    t = hybrid.train
    v = view(bundle)
    recent = (Recent(str(t.items[7]), "view", 60.0),)
    user = str(t.users[4])
    anonymous = bundle.rank(RankRequest(k=10, recent=recent), v)
    assert anonymous == bundle.rank(RankRequest(user="no-such-shopper", k=10, recent=recent), v)
    refused = bundle.rank(RankRequest(user=user, personal=False, k=10, recent=recent), v)
    assert refused == anonymous
    assert all(r.reason != "personal" for r in refused)
    personal = bundle.rank(RankRequest(user=user, k=10, recent=recent), v)
    assert personal != anonymous
    # Cold start without a session: the trending order.
    cold = bundle.rank(RankRequest(k=5), view(bundle, share=1.0))
    assert keys(cold) == [str(bundle.items[j]) for j in bundle.trending_order[:5]]
    assert {r.reason for r in cold} == {"trending"}


def test_product_and_cart_scenarios(hybrid: Hybrid, bundle: Bundle) -> None:
    t = hybrid.train
    v = view(bundle, share=1.0)
    product = str(t.items[3])
    got = bundle.rank(RankRequest(scenario="PRODUCT", product=product, k=5), v)
    check_answer(got)
    assert product not in keys(got)
    similar = [str(bundle.items[j]) for j in bundle.similar_ids[3][:5]]
    assert keys(got) == similar and all(r.source == product for r in got)
    assert keys(bundle.similar_items(product, 5, v)) == similar
    cart = [str(t.items[2]), str(t.items[9])]
    got = bundle.rank(RankRequest(scenario="CART", cart=cart, k=8), v)
    check_answer(got)
    assert len(got) == 8 and not set(cart) & set(keys(got))
    assert all(r.source in cart for r in got if r.reason in ("together", "similar", "content"))
    # The hybrid's (tuned) CART weights decide which item signals count.
    signals = {"itemknn": "similar"}
    weighted = {signals.get(n, n) for n, w in hybrid.weights["CART"].items() if w > 0}
    reasons = {r.reason for r in got}
    assert reasons & weighted and reasons <= weighted | {"trending"}
    bt = bundle.bought_together(cart, 5, v)
    check_answer(bt)
    assert bt and all(r.reason == "together" and r.source in cart for r in bt)
    assert not set(cart) & set(keys(bt))


def test_unknown_keys_are_ignored_never_an_error(hybrid: Hybrid, bundle: Bundle) -> None:
    v = view(bundle)
    assert bundle.similar_items("no-such-product", 5, v) == []
    assert bundle.bought_together(["nope", "nada"], 5, v) == []
    got = bundle.rank(RankRequest(scenario="PRODUCT", product="nope", k=5), v)
    assert len(got) == 5  # widened with the trending order
    got = bundle.rank(
        RankRequest(scenario="CART", cart=["nope"], recent=(Recent("gone", "view", 1.0),), k=5), v
    )
    assert len(got) == 5
    mixed = bundle.bought_together(["nope", str(hybrid.train.items[2])], 5, v)
    assert mixed == bundle.bought_together([str(hybrid.train.items[2])], 5, v)
    weird = RankRequest(
        scenario="SOMETHING", k=10**6, recent=(Recent(str(hybrid.train.items[1]), "?", math.nan),)
    )
    got = bundle.rank(weird, v)
    assert len(got) == len(bundle.items) - 1  # capped at the catalogue, the recent item left out


def test_a_filter_that_excludes_everything_returns_nothing(hybrid: Hybrid, bundle: Bundle) -> None:
    none = view(bundle, np.zeros(len(bundle.items), bool))
    user = str(hybrid.train.users[1])
    item = str(hybrid.train.items[3])
    for scenario in ("HOME", "EMAIL", "PRODUCT", "CART"):
        req = RankRequest(
            scenario=scenario,
            user=user,
            product=item,
            cart=[item],
            recent=(Recent(item, "view", 1),),
        )
        assert bundle.rank(req, none) == []
    assert bundle.similar_items(item, 5, none) == []
    assert bundle.bought_together([item], 5, none) == []
    assert bundle.trending_items(None, 5, none) == []
    assert bundle.similar_to_text(hybrid.train.item_text[3], 5, none) == []
    # Allowing three items gives those three, whatever the scenario.
    three = np.zeros(len(bundle.items), bool)
    three[[10, 20, 30]] = True
    got = bundle.rank(RankRequest(user=user, k=10), view(bundle, three))
    mine = history(hybrid, 1)
    assert set(keys(got)) == {str(bundle.items[j]) for j in (10, 20, 30)} - mine
    with pytest.raises(ValueError, match="one entry per bundle item"):
        bundle.rank(RankRequest(), view(bundle, np.ones(3, bool)))


def test_trending_in_a_category_and_text_cold_start(hybrid: Hybrid, bundle: Bundle) -> None:
    n = len(bundle.items)
    v = view(bundle, share=1.0)
    mask = np.arange(n) % 3 == 0
    got = bundle.trending_items(mask, 6, v)
    want = [str(bundle.items[j]) for j in bundle.trending_order if mask[j]][:6]
    assert keys(got) == want and {r.reason for r in got} == {"trending"}
    assert keys(bundle.trending_items(None, 4, v)) == [
        str(bundle.items[j]) for j in bundle.trending_order[:4]
    ]
    with pytest.raises(ValueError):
        bundle.trending_items(np.ones(2, bool), 3, v)
    # A new product's text finds the items the trained TF-IDF finds, in the same order.
    text = hybrid.train.item_text[6] + " unseenword"
    got = bundle.similar_to_text(text, 5, v)
    content = hybrid.components["content"]
    assert isinstance(content, Content)
    s = content.text_scores(text)
    np.testing.assert_allclose([r.score for r in got], np.sort(s)[::-1][:5], rtol=1e-5)
    assert all(r.reason == "content" for r in got)
    assert bundle.similar_to_text("zzzz qqqq", 5, v) == []
    assert bundle.similar_to_text("", 5, v) == []


# -- training writes a loadable bundle -------------------------------------------------------------


async def test_a_trained_candidate_has_a_loadable_bundle(db: Database, settings: Settings) -> None:
    await seed(db)
    steps: list[str] = []
    row = await service.train(db, fast(settings), progress=lambda s, d, t: steps.append(s))
    assert "precomputing lists" in steps
    async with db.read_only() as session:
        stored = await session.get(ModelVersion, row.id)
        assert stored is not None and stored.serving is not None
        assert stored.serving_sha256 == Bundle.sha256_of(stored.serving)
        assert len(stored.serving) < len(stored.artifact or b"") * 4
        b = Bundle.loads(stored.serving)
    assert len(b.users) == row.users and len(b.items) == row.items
    assert all(key.isdigit() for key in b.items.tolist())  # product ids
    user = next(iter(b.user_index))
    got = b.rank(RankRequest(user=user, k=5), view(b))
    assert len(got) == 5 and {r.reason for r in got} <= {"personal", "trending"}


# -- the offline CLI writes one too ----------------------------------------------------------------


def test_evaluate_writes_a_bundle(tmp_path: Path) -> None:
    csv = synthetic.write_csv(synthetic.generate(users=120, items=40, seed=5), tmp_path / "d.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRECIS_")}
    precis = str(Path(sys.executable).parent / "precis")
    args = [precis, "recommend", "evaluate", "--data", str(csv), "--algorithms", "itemknn"]
    done = subprocess.run(
        [*args, "--bundle", str(tmp_path / "serving.bin")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "serving bundle written to" in done.stderr
    b = Bundle.loads((tmp_path / "serving.bin").read_bytes())
    assert len(b.items) <= 40 and len(b.users) > 0
    assert len(b.rank(RankRequest(user=str(b.users[0]), k=5), view(b))) == 5
    done = subprocess.run(
        [*args, "--bundle", str(tmp_path / "missing-dir" / "serving.bin")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "cannot write" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "missing-dir").exists()


def test_one_bundle_serves_many_threads(hybrid: Hybrid, bundle: Bundle) -> None:
    from concurrent.futures import ThreadPoolExecutor

    t = hybrid.train
    rng = np.random.default_rng(3)
    reqs = [
        RankRequest(
            scenario=("HOME", "PRODUCT", "CART")[r % 3],
            user=str(t.users[int(rng.integers(0, t.n_users))]) if r % 2 else None,
            product=str(t.items[r % t.n_items]),
            cart=[str(t.items[(r * 7) % t.n_items])],
            recent=(Recent(str(t.items[(r * 3) % t.n_items]), "view", 10.0),),
            k=8,
        )
        for r in range(120)
    ]
    v = view(bundle)
    alone = [bundle.rank(r, v) for r in reqs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda r: bundle.rank(r, v), reqs))
    assert together == alone


# -- precomputed sources of personal items (user_top_source) ---------------------------------------


def test_personal_sources_are_precomputed_as_a_request_would_find_them(bundle: Bundle) -> None:
    """``user_top_source`` names, for every listed item, the history item a request would find
    (``_history_source``), -1 where there is none and in every empty slot."""
    src = bundle.user_top_source
    assert src.shape == bundle.user_top_ids.shape and src.dtype == np.int32
    assert (src[bundle.user_top_ids < 0] == -1).all()
    named = 0
    for user in range(len(bundle.users)):
        listed = [i for i in bundle.user_top_ids[user].tolist() if i >= 0]
        want = bundle._history_source(user, listed)
        got = {i: s for i, s in zip(listed, src[user].tolist(), strict=False) if s >= 0}
        assert got == want, user
        named += len(got)
    assert named > len(bundle.users)  # most listed items have a source


def _without_sources(bundle: Bundle) -> bytes:
    """The blob a bundle built before ``user_top_source`` existed: the same arrays, minus it."""
    blob = bundle.dumps()
    with zipfile.ZipFile(io.BytesIO(blob[len(MAGIC) + 65 :])) as z:
        arrays = {n[:-4]: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}
    assert "user_top_source" in arrays
    del arrays["user_top_source"]
    return _npz(**arrays)


def test_a_bundle_without_precomputed_sources_loads_and_answers_the_same(
    hybrid: Hybrid, bundle: Bundle
) -> None:
    old = Bundle.loads(_without_sources(bundle))
    assert old.user_top_source.size == 0 and bundle.user_top_source.size > 0
    v = view(bundle)
    items = [str(x) for x in hybrid.train.items[:6]]
    asked = 0
    for u in range(0, len(bundle.users), 7):
        user = str(bundle.users[u])
        for recent in ((), (Recent(items[u % 6], "view", 30.0),)):
            req = RankRequest(user=user, recent=recent, k=8)
            answer = bundle.rank(req, v)
            assert old.rank(req, v) == answer
            asked += sum(r.reason == "personal" and r.source is not None for r in answer)
    assert asked > 20  # personal items explained, by the array and without it


def test_damaged_precomputed_sources_are_refused(bundle: Bundle) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle.dumps()[len(MAGIC) + 65 :])) as z:
        arrays = {n[:-4]: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}
    src = arrays["user_top_source"]
    empty = np.argwhere(arrays["user_top_ids"] < 0)
    bad_slot = src.copy()
    if len(empty):
        bad_slot[tuple(empty[0])] = 0
    cases = {
        "wrong shape": src[:, :-1],
        "past the catalogue": src + len(bundle.items),
        "below -1": np.full_like(src, -2),
        "not integers": src.astype(np.float32),
    }
    if len(empty):
        cases["a source for an empty slot"] = bad_slot
    for name, value in cases.items():
        with pytest.raises(ArtifactError, match="inconsistent"):
            Bundle.loads(_npz(**dict(arrays, user_top_source=value)))
        assert name
    assert Bundle.loads(_npz(**arrays)).user_top_source.shape == src.shape
