"""One offline experiment: split by the protocol, tune on a validation split carved from training,
fit every component on the full training split, evaluate each, the hybrid and popularity on the test
split, and bootstrap the hybrid's NDCG gain over popularity."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommend import protocol
from recommend.components import DEFAULT_ALGORITHMS, Component, SurpriseComponent, make
from recommend.data import Interactions
from recommend.hybrid import (
    ITEM_SCENARIOS,
    ITEM_WEIGHTS,
    Hybrid,
    ItemTuning,
    Tuning,
    default_weights,
    item_ndcg,
    normalise,
    tune_item_weights,
    tune_weights,
)
from recommend.protocol import Holdout, Result, TrainSet

# Dense score rows held at once: users per batch = SCORE_BUDGET // n_items.
SCORE_BUDGET = 20_000_000
# Validation users whose normalised scores are kept for the weight search (all components).
VALIDATION_BUDGET = 120_000_000
# Test users (a seeded sample) on whom the item-to-item scenarios are measured: at most this many
# floats of normalised scores (3 signals x users x items), and at least 200 users.
ITEM_TEST_BUDGET = 120_000_000
# Components whose signals the item-to-item scenarios blend (hybrid.item_parts).
ITEM_SOURCES = ("itemknn", "session", "together", "content")


class EvaluationError(ValueError):
    """The data cannot support the protocol (too small, nobody evaluable)."""


Progress = Callable[[str, int, int], None]  # (step description, done, total)


@dataclass
class Report:
    k: int
    seed: int
    source: str
    interactions: int
    users: int
    items: int
    pairs: int
    evaluated_users: int
    train_items: int
    diversity_basis: str
    results: list[Result]
    hybrid_weights: dict[str, float]
    tuning: Tuning | None
    tuned_params: dict[str, dict[str, Any]]
    ci: tuple[float, float, float]  # mean, low, high of hybrid - popularity NDCG@k
    resamples: int
    best_single: str
    seconds: float
    model: Hybrid | None = field(default=None, repr=False)
    item_tunings: dict[str, ItemTuning] = field(default_factory=dict)

    def result(self, name: str) -> Result:
        return next(r for r in self.results if r.name == name)

    def to_json(self) -> dict[str, Any]:
        hyb = self.result("hybrid")
        best = self.result(self.best_single)
        return {
            "source": self.source,
            "k": self.k,
            "seed": self.seed,
            "data": {
                "interactions": self.interactions,
                "users": self.users,
                "items": self.items,
                "pairs": self.pairs,
                "evaluated_users": self.evaluated_users,
                "train_items": self.train_items,
            },
            "results": [r.row() for r in self.results],
            "hybrid": {
                "weights": self.hybrid_weights,
                "validation_ndcg": self.tuning.hybrid_ndcg if self.tuning else None,
                "validation_best_single": self.tuning.best_single if self.tuning else None,
                "validation_best_single_ndcg": self.tuning.best_single_ndcg
                if self.tuning
                else None,
                "test_best_single": self.best_single,
                "at_least_best_single": hyb.ndcg >= best.ndcg,
            },
            "tuned_params": self.tuned_params,
            "scenarios": {s: t.row() for s, t in self.item_tunings.items()},
            "bootstrap": {
                "metric": f"ndcg@{self.k}",
                "difference": "hybrid - popularity",
                "mean": self.ci[0],
                "ci95": [self.ci[1], self.ci[2]],
                "excludes_zero": self.ci[1] > 0 or self.ci[2] < 0,
                "resamples": self.resamples,
            },
            "diversity_basis": self.diversity_basis,
            "seconds": round(self.seconds, 2),
        }


def _names(specs: Sequence[str]) -> list[str]:
    out = []
    for s in specs:
        if s.strip():
            out.append(s)
    return out


def _with_seed(c: Component, seed: int) -> Component:
    if "seed" in c.params:
        c.params["seed"] = seed
    return c


def _batches(n_users: int, n_items: int) -> list[slice]:
    size = max(1, SCORE_BUDGET // max(n_items, 1))
    return [slice(a, min(n_users, a + size)) for a in range(0, n_users, size)]


def _scored_users(train: TrainSet, users: Sequence[str]) -> np.ndarray:
    return np.array([train.user_index[u] for u in users], dtype=np.int64)


def _relevance(train: TrainSet, users: Sequence[str], test: dict[str, frozenset[str]]):
    rel = np.zeros((len(users), train.n_items), dtype=bool)
    n_rel = np.zeros(len(users), dtype=np.int64)
    for r, u in enumerate(users):
        items = test[u]
        n_rel[r] = len(items)
        idx = [train.item_index[i] for i in items if i in train.item_index]
        rel[r, idx] = True
    return rel, n_rel


def _tune_component(
    c: Component,
    vtrain: TrainSet,
    vusers: np.ndarray,
    rel: np.ndarray,
    n_rel: np.ndarray,
    k: int,
    explicit: set[str],
) -> tuple[Component, dict[str, Any], Component | None]:
    """Try each value of the component's tuning grid on validation; keep the best NDCG@k. A
    parameter given on the command line is not tuned. Also returns the best trial, fitted."""
    from recommend.hybrid import ndcg_at

    grid = {p: v for p, v in c.tune_grid().items() if p not in explicit}
    if not grid:
        return c, {}, None
    ((param, values),) = list(grid.items())[:1]
    exclude = vtrain.binary()[vusers]
    best_value, best_score, best_fit = c.params[param], -1.0, None
    seen: dict[Any, float] = {}
    for v in values:
        trial = type(c)(**{**c.params, param: v})
        trial.fit(vtrain)
        recs = protocol.top_k(trial.scores(vusers), k, exclude)
        seen[v] = float(ndcg_at(recs, rel, n_rel, k).mean())
        if seen[v] > best_score + 1e-12:
            best_value, best_score, best_fit = v, seen[v], trial
    c.params[param] = best_value
    return c, {param: best_value, "validation_ndcg": seen}, best_fit


def run(
    data: Interactions,
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    *,
    k: int = 10,
    seed: int = 0,
    resamples: int = 2000,
    tune: bool = True,
    keep_model: bool = False,
    progress: Progress | None = None,
) -> Report:
    """The whole experiment; ``progress(step, done, total)`` is told as it goes."""
    started = time.perf_counter()
    tell = progress or (lambda step, done, total: None)
    if k < 1:
        raise EvaluationError("k must be at least 1")
    specs = _names(algorithms)
    # Popularity is always the baseline; a spec list naming it twice runs it once.
    components = [_with_seed(make(s), seed) for s in specs]
    explicit = [set(c.params) & _given(s) for c, s in zip(components, specs, strict=True)]
    if not any(c.name == "popularity" for c in components):
        components.insert(0, make("popularity"))
        explicit.insert(0, set())
    names = _unique_names(components)

    tell("splitting", 0, 1)
    h = protocol.split(data)
    if not h.test:
        raise EvaluationError(
            f"nobody to evaluate: no user has {protocol.MIN_EVALUATED} or more distinct items "
            f"({h.n_users} users, {h.n_pairs} user-item pairs)"
        )
    train = protocol.build(h.train)
    v = protocol.split(h.train)
    tell("splitting", 1, 1)

    tuned_params: dict[str, dict[str, Any]] = {}
    tuning: Tuning | None = None
    weights: dict[str, float] = {}
    item_tunings = {
        s: ItemTuning(s, dict(ITEM_WEIGHTS[s]), dict(ITEM_WEIGHTS[s]), 0, False, "no validation")
        for s in ITEM_SCENARIOS
    }
    if v.test and len(components) > 1:
        vtrain = protocol.build(v.train)
        vusers_all = list(v.test)
        cap = max(50, VALIDATION_BUDGET // max(1, vtrain.n_items * len(components)))
        if len(vusers_all) > cap:
            rng = np.random.default_rng(seed)
            vusers_all = sorted(rng.choice(vusers_all, size=cap, replace=False).tolist())
        vusers = _scored_users(vtrain, vusers_all)
        rel, n_rel = _relevance(vtrain, vusers_all, v.test)
        exclude = vtrain.binary()[vusers]
        parts: dict[str, np.ndarray] = {}
        item_sources: dict[str, Component] = {}
        for i, (name, c) in enumerate(zip(names, components, strict=True)):
            tell(f"validation: {name}", i, len(components))
            fitted = None
            if tune:
                c, info, fitted = _tune_component(c, vtrain, vusers, rel, n_rel, k, explicit[i])
                components[i] = c
                if info:
                    tuned_params[name] = info
            if fitted is None:
                fitted = type(c)(**c.params).fit(vtrain)
            parts[name] = normalise(fitted.scores(vusers), exclude)
            if name in ITEM_SOURCES:
                item_sources[name] = fitted
        tell("validation: blend weights", 0, 1)
        counter = {"n": 0}

        def step() -> None:
            counter["n"] += 1
            tell("validation: blend weights", counter["n"], counter["n"] + 1)

        tuning = tune_weights(parts, rel, n_rel, exclude, k, progress=step)
        weights = tuning.weights
        del parts
        for j, scenario in enumerate(ITEM_SCENARIOS):
            tell("validation: item-to-item weights", j, len(ITEM_SCENARIOS))
            item_tunings[scenario] = tune_item_weights(
                item_sources, vtrain, v.train, vusers_all, rel, n_rel, k, scenario
            )
    else:
        # Nothing to tune on (one component, or nobody with 5 training pairs): the baseline.
        weights = {_popularity_name(names): 1.0}

    fitted_components: dict[str, Component] = {}
    seconds: dict[str, float] = {}
    for i, (name, c) in enumerate(zip(names, components, strict=True)):
        tell(f"training: {name}", i, len(components))
        t0 = time.perf_counter()
        fitted_components[name] = type(c)(**c.params).fit(train)
        seconds[name] = time.perf_counter() - t0
    tell("training", len(components), len(components))

    users = h.users
    uidx = _scored_users(train, users)
    features, basis = protocol.diversity_features(train)
    width = min(k, train.n_items)  # a catalogue smaller than k gives shorter lists
    lists = {n: np.zeros((len(users), width), np.int64) for n in [*names, "hybrid"]}
    batches = _batches(len(users), train.n_items)
    for b, sl in enumerate(batches):
        tell("scoring the test users", b, len(batches))
        rows = uidx[sl]
        exclude = train.binary()[rows]
        normed: dict[str, np.ndarray] = {}
        for name, c in fitted_components.items():
            t0 = time.perf_counter()
            s = c.scores(rows)
            seconds[name] += time.perf_counter() - t0
            lists[name][sl] = protocol.top_k(s, k, exclude)
            if weights.get(name):
                normed[name] = normalise(s, exclude)
        from recommend.hybrid import blend

        lists["hybrid"][sl] = protocol.top_k(blend(normed, weights), k, exclude)
    tell("scoring the test users", len(batches), len(batches))

    results: list[Result] = []
    for name in [*names, "hybrid"]:
        r = protocol.evaluate_lists(name, train, users, lists[name], h.test, k, features)
        if name == "hybrid":
            r.seconds = sum(seconds[n] for n, w in weights.items() if w)
        else:
            r.seconds = seconds[name]
            c = fitted_components[name]
            if isinstance(c, SurpriseComponent) and data.has_ratings:
                r.rmse, r.mae = _rating_errors(c, train, data, h)
        results.append(r)

    _measure_item_scenarios(item_tunings, fitted_components, train, h, k, seed, tell)

    pop = next(r for r in results if r.name == _popularity_name(names))
    hyb = results[-1]
    ci = protocol.paired_bootstrap(
        hyb.per_user_ndcg, pop.per_user_ndcg, resamples=resamples, seed=seed
    )
    singles = [r for r in results if r.name != "hybrid"]
    best_single = max(singles, key=lambda r: r.ndcg).name
    model = None
    if keep_model:
        item = {s: t.weights for s, t in item_tunings.items()}
        model = Hybrid(train, fitted_components, default_weights(weights, item))
    return Report(
        k=k,
        seed=seed,
        source=data.source,
        interactions=len(data),
        users=data.n_users,
        items=data.n_items,
        pairs=h.n_pairs,
        evaluated_users=len(users),
        train_items=train.n_items,
        diversity_basis=basis,
        results=results,
        hybrid_weights={n: w for n, w in weights.items() if w},
        tuning=tuning,
        tuned_params=tuned_params,
        ci=ci,
        resamples=resamples,
        best_single=best_single,
        seconds=time.perf_counter() - started,
        model=model,
        item_tunings=item_tunings,
    )


def _measure_item_scenarios(
    tunings: dict[str, ItemTuning],
    fitted: dict[str, Component],
    train: TrainSet,
    h: Holdout,
    k: int,
    seed: int,
    tell: Progress,
) -> None:
    """NDCG@k of the tuned and the default item-to-item weights on the test split (the same
    protocol as on validation, components fitted on the whole training split), on a seeded
    sample of the evaluated users as large as ``ITEM_TEST_BUDGET`` allows (all of them when
    they fit)."""
    sources = {n: c for n, c in fitted.items() if n in ITEM_SOURCES}
    if not sources:
        return
    users = h.users
    cap = max(200, ITEM_TEST_BUDGET // max(1, 3 * train.n_items))
    if len(users) > cap:
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(users, size=cap, replace=False).tolist())
    rel, n_rel = _relevance(train, users, h.test)
    for j, (scenario, t) in enumerate(tunings.items()):
        tell("test: item-to-item scenarios", j, len(tunings))
        (tuned, default), n = item_ndcg(
            sources, train, h.train, users, rel, n_rel, k, scenario, [t.weights, t.default]
        )
        t.test_ndcg, t.default_test_ndcg, t.test_users = tuned, default, n


def _given(spec: str) -> set[str]:
    if "(" not in spec:
        return set()
    inner = spec[spec.index("(") + 1 : spec.rindex(")")]
    return {p.split("=", 1)[0].strip() for p in inner.split(",") if "=" in p}


def _unique_names(components: list[Component]) -> list[str]:
    """Report names: the algorithm name, or its spec as given when the same algorithm runs
    twice."""
    counts: dict[str, int] = {}
    for c in components:
        counts[c.name] = counts.get(c.name, 0) + 1
    names = [c.name if counts[c.name] == 1 else c.spec for c in components]
    if len(set(names)) != len(names):
        raise EvaluationError(f"the same algorithm twice: {', '.join(names)}")
    return names


def _popularity_name(names: list[str]) -> str:
    return next(n for n in names if n == "popularity" or n.startswith("popularity("))


def _rating_errors(
    c: SurpriseComponent, train: TrainSet, data: Interactions, h: Holdout
) -> tuple[float | None, float | None]:
    """RMSE and MAE on the held-out pairs that carry a rating and whose user and item were seen in
    training (the last rating of the pair)."""
    f = data.frame
    held = f[f["user"].isin(h.test.keys()) & f["rating"].notna()]
    held = held[[i in h.test[u] for u, i in zip(held["user"], held["item"], strict=True)]]
    held = held[held["item"].isin(train.item_index.keys())]
    if held.empty:
        return None, None
    held = held.sort_values("time").groupby(["user", "item"], sort=False).tail(1)
    users = held["user"].map(train.user_index).to_numpy(np.int64)
    items = held["item"].map(train.item_index).to_numpy(np.int64)
    pred = c.ratings_for(users, items)
    return protocol.rating_errors(pred, held["rating"].to_numpy(np.float64))
