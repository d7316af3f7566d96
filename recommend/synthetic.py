"""Synthetic interactions with a known structure, for tests and benchmarks (nothing downloaded).

Items fall into ``groups`` taste groups with a popularity skew (Zipf) inside each group and a share
of globally popular items; each user belongs to one group and draws most of their items from it, the
rest from the global popularity. Time runs forward per user; every item's text names its group, so
content similarity can find the group too. A personal model should beat popularity here; a model that
does not has a bug.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from recommend.data import Interactions, make_interactions

WORDS = (
    "red blue green gold silver linen wooden ceramic glass paper vintage modern floral "
    "striped kitchen garden candle lantern mug bag card frame clock cushion"
).split()


def generate(
    *,
    users: int = 400,
    items: int = 200,
    groups: int = 8,
    per_user: tuple[int, int] = (4, 20),
    loyalty: float = 0.8,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    ratings: bool = False,
) -> Interactions:
    """Interactions as described in the module docstring; baskets are (user, day). With
    ``ratings``, each interaction also carries an explicit 1-5 rating (MovieLens shape): about 4.3
    for items of the user's own group, 2.5 for others, plus noise."""
    rng = np.random.default_rng(seed)
    item_group = rng.integers(0, groups, size=items)
    zipf = 1.0 / np.arange(1, items + 1) ** 0.8
    rng.shuffle(zipf)
    glob = zipf / zipf.sum()
    by_group = []
    for g in range(groups):
        w = np.where(item_group == g, zipf, 0.0)
        by_group.append(w / w.sum() if w.sum() else glob)
    rows_u, rows_i, rows_t, rows_r = [], [], [], []
    for u in range(users):
        g = int(rng.integers(0, groups))
        n = int(rng.integers(per_user[0], per_user[1] + 1))
        t = start + float(rng.uniform(0, 200)) * 86400
        for _ in range(n):
            p = by_group[g] if rng.random() < loyalty else glob
            i = int(rng.choice(items, p=p))
            t += float(rng.exponential(3.0)) * 86400
            rows_u.append(f"u{u}")
            rows_i.append(str(i))
            rows_t.append(t)
            mean = 4.3 if item_group[i] == g else 2.5
            rows_r.append(float(np.clip(np.rint(mean + rng.normal(0, 0.8)), 1, 5)))
    text = {
        str(
            i
        ): f"{WORDS[item_group[i] % len(WORDS)]} {WORDS[(item_group[i] * 7 + 3) % len(WORDS)]} "
        f"{WORDS[int(rng.integers(0, len(WORDS)))]}"
        for i in range(items)
    }
    if ratings:
        return make_interactions(
            rows_u, rows_i, rows_t, rows_r, rows_r, item_text=text, source="synthetic ratings"
        )
    return make_interactions(rows_u, rows_i, rows_t, item_text=text, source="synthetic")


def write_csv(data: Interactions, path: Path | str) -> Path:
    """Write ``user_id,item_id,timestamp[,weight]`` (Unix seconds)."""
    p = Path(path)
    f = data.frame
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "timestamp", "weight"])
        for u, i, t, wt in zip(f["user"], f["item"], f["time"], f["weight"], strict=True):
            w.writerow([u, i, f"{t:.0f}", f"{wt:g}"])
    return p
