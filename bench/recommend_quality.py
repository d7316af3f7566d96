"""Recommendation quality under the issue's protocol (docs/recommendations.md), on the shared
Online Retail sample and on a synthetic data set with known structure.

Data: /work/shared/data/online-retail-sample.csv (UCI "Online Retail", Daqing Chen 2015,
DOI 10.24432/C5BW33, CC BY 4.0; a 40,000-row sample, so baskets are incomplete). Two synthetic sets
are generated here (recommend/synthetic.py: taste groups, Zipf popularity, group words in item text;
the second with explicit 1-5 ratings, the MovieLens shape, so RMSE and MAE apply); nothing is
downloaded.

Prints, per data set, the markdown table of ``precis recommend evaluate`` (every algorithm, the
hybrid, popularity) with the paired bootstrap interval of hybrid - popularity NDCG@10, and checks
the quality bar: popularity NDCG@10 on the retail sample 0.0215 (rounded), hybrid >= best single,
interval above zero. Exit status 1 if a check fails.

    .venv/bin/python bench/recommend_quality.py [--data PATH] [--synthetic-only] [--seeds 0,1,2]
        [--algorithms ...] [--surprise] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import retail_sample
from recommend import synthetic
from recommend.components import DEFAULT_ALGORITHMS, split_specs
from recommend.data import Interactions, load
from recommend.evaluate import Report, run
from recommend.report import markdown

SURPRISE_ALL = (
    "svd",
    "svdpp",
    "nmf",
    "baselineonly",
    "knnwithmeans(user_based=false,sim=cosine)",
    "knnwithmeans(user_based=true,sim=pearson)",
    "knnbaseline(user_based=false,sim=pearson_baseline)",
    "knnbaseline(user_based=true,sim=pearson_baseline)",
    "slopeone",
)


def progress(step: str, done: int, total: int) -> None:
    if done == 0:
        print(f"  {time.strftime('%H:%M:%S')} {step}", file=sys.stderr, flush=True)


def evaluate(name: str, data: Interactions, algorithms: list[str], seed: int) -> Report:
    print(f"{name}, seed {seed}:", file=sys.stderr)
    return run(data, algorithms, seed=seed, progress=progress)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=retail_sample())
    p.add_argument("--algorithms", default=",".join(DEFAULT_ALGORITHMS))
    p.add_argument(
        "--surprise", action="store_true", help="also every Surprise algorithm (slow: KNN, SVD++)"
    )
    p.add_argument("--seeds", default="0", help="comma-separated seeds (the first is reported)")
    p.add_argument("--synthetic-only", action="store_true")
    p.add_argument("--synthetic-users", type=int, default=3000)
    p.add_argument("--synthetic-items", type=int, default=1500)
    p.add_argument("--json", type=Path, help="also write every report as JSON here")
    p.add_argument(
        "--quick", action="store_true", help="tiny synthetic data only, no checks (CI smoke run)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.synthetic_only, args.synthetic_users, args.synthetic_items = True, 150, 60
        args.algorithms = "itemknn,ease"
    algorithms = split_specs(args.algorithms)
    if args.surprise:
        algorithms += [s for s in SURPRISE_ALL if s not in algorithms]
    seeds = [int(s) for s in args.seeds.split(",")]

    sets: list[tuple[str, Interactions]] = []
    if not args.synthetic_only:
        if not args.data.exists():
            print(f"{args.data} is not here (shared/ beside the repository)", file=sys.stderr)
            return 2
        sets.append(("Online Retail sample", load(args.data)))
    syn = synthetic.generate(
        users=args.synthetic_users, items=args.synthetic_items, groups=20, seed=1
    )
    syn.source = (
        f"synthetic (recommend/synthetic.py: {args.synthetic_users} users, "
        f"{args.synthetic_items} items, 20 taste groups, seed 1)"
    )
    sets.append(("synthetic", syn))
    if not args.quick:
        rated = synthetic.generate(users=1000, items=500, groups=10, seed=2, ratings=True)
        rated.source = (
            "synthetic ratings (recommend/synthetic.py, ratings=True: 1000 users, 500 items, "
            "10 taste groups, explicit 1-5 ratings, seed 2)"
        )
        sets.append(("synthetic with ratings", rated))

    ok = True
    dumps = []
    for name, data in sets:
        reports = [evaluate(name, data, algorithms, seed) for seed in seeds]
        first = reports[0]
        print(f"## {name}\n")
        print(markdown(first))
        print()
        for r in reports:
            hyb, best = r.result("hybrid"), r.result(r.best_single)
            pop = r.result("popularity")
            print(
                f"seed {r.seed}: popularity {pop.ndcg:.4f}, best single {r.best_single} "
                f"{best.ndcg:.4f}, hybrid {hyb.ndcg:.4f}, hybrid - popularity "
                f"{r.ci[0]:+.4f} [{r.ci[1]:+.4f}, {r.ci[2]:+.4f}]"
            )
            ok &= hyb.ndcg >= best.ndcg and r.ci[1] > 0
            if name.startswith("Online Retail"):
                ok &= round(pop.ndcg, 4) == 0.0215
            dumps.append({"dataset": name, **r.to_json()})
        print()
    if args.json:
        args.json.write_text(json.dumps(dumps, indent=2, default=float))
    if args.quick:
        return 0
    print("quality bar:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
