"""Render an evaluation :class:`~recommend.evaluate.Report` as markdown."""

from __future__ import annotations

from recommend.evaluate import Report


def _f(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(report: Report) -> str:
    k = report.k
    lines = [
        f"Data: {report.source}: {report.interactions:,} interactions, {report.users:,} users, "
        f"{report.items:,} items, {report.pairs:,} user-item pairs; "
        f"{report.evaluated_users:,} users evaluated, {report.train_items:,} candidate items.",
        "",
        f"| algorithm | P@{k} | R@{k} | NDCG@{k} | MAP@{k} | HR@{k} | coverage | diversity | "
        "novelty | RMSE | MAE | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.results:
        lines.append(
            f"| {r.name} | {_f(r.precision)} | {_f(r.recall)} | {_f(r.ndcg)} | {_f(r.map)} | "
            f"{_f(r.hit_rate)} | {_f(r.coverage, 3)} | {_f(r.diversity, 3)} | "
            f"{_f(r.novelty, 2)} | {_f(r.rmse)} | {_f(r.mae)} | {r.seconds:.1f} |"
        )
    hyb = report.result("hybrid")
    best = report.result(report.best_single)
    mean, lo, hi = report.ci
    weights = ", ".join(f"{n} {w:g}" for n, w in report.hybrid_weights.items()) or "-"
    lines += [
        "",
        f"Hybrid weights (tuned on validation): {weights}.",
    ]
    if report.tuning:
        t = report.tuning
        lines.append(
            f"Validation NDCG@{k}: best single {t.best_single} {t.best_single_ndcg:.4f}, "
            f"hybrid {t.hybrid_ndcg:.4f} ({t.evaluations} blends tried)."
        )
    else:
        lines.append("No validation split to tune on: the hybrid is popularity alone.")
    for name, info in report.tuned_params.items():
        chosen = {p: v for p, v in info.items() if p != "validation_ndcg"}
        lines.append(
            f"Tuned on validation: {name} " + ", ".join(f"{p}={v}" for p, v in chosen.items())
        )
    for scenario, it in report.item_tunings.items():
        w = ", ".join(f"{n} {v:g}" for n, v in it.weights.items())
        if it.tuned:
            line = (
                f"{scenario} weights (tuned on validation, {it.users:,} users): {w}; validation "
                f"NDCG@{k} {_f(it.validation_ndcg)}, defaults {_f(it.default_validation_ndcg)}"
            )
        else:
            line = f"{scenario} weights: the defaults {w} ({it.reason})"
        if it.test_users:
            line += (
                f"; test NDCG@{k} {_f(it.test_ndcg)}, defaults {_f(it.default_test_ndcg)} "
                f"({it.test_users:,} users)"
            )
        lines.append(line + ".")
    verdict = "yes" if hyb.ndcg >= best.ndcg else "NO"
    excl = "excludes zero" if lo > 0 or hi < 0 else "includes zero"
    lines += [
        f"Hybrid >= best single component on test NDCG@{k} ({report.best_single} "
        f"{best.ndcg:.4f}): {verdict} (hybrid {hyb.ndcg:.4f}).",
        f"Hybrid - popularity NDCG@{k}: {mean:+.4f}, paired bootstrap 95% CI "
        f"[{lo:+.4f}, {hi:+.4f}] over {report.evaluated_users:,} users, "
        f"{report.resamples} resamples: {excl}.",
        f"Diversity basis: {report.diversity_basis}. Seed {report.seed}; {report.seconds:.1f} s.",
    ]
    return "\n".join(lines)
