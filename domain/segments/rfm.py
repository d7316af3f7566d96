"""RFM group names over the recency x frequency grid (the widely used RF grid of RFM analysis).

The profile job scores every customer 1-5 on recency (``r_score``) and frequency (``f_score``);
each of the 25 cells belongs to exactly one group. The segment compiler turns a group into
``(r_score, f_score)`` conditions from this table, and docs/segments.md prints it.
"""

from __future__ import annotations

# group -> (recency scores, frequency scores); the cells of all groups cover the 5x5 grid once.
GRID: dict[str, tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]] = {
    "champions": (((5,), (4, 5)),),
    "loyal_customers": (((3, 4), (4, 5)),),
    "potential_loyalists": (((4, 5), (2, 3)),),
    "new_customers": (((5,), (1,)),),
    "promising": (((4,), (1,)),),
    "need_attention": (((3,), (3,)),),
    "about_to_sleep": (((3,), (1, 2)),),
    "at_risk": (((1, 2), (3, 4)),),
    "cant_lose_them": (((1, 2), (5,)),),
    "hibernating": (((1, 2), (1, 2)),),
}
GROUPS = tuple(GRID)


def group_of(r_score: int | None, f_score: int | None) -> str | None:
    """The group of one cell (None without scores)."""
    for name, cells in GRID.items():
        for rs, fs in cells:
            if r_score in rs and f_score in fs:
                return name
    return None


def cells(groups: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """The (r, f) cells of the given groups."""
    return sorted((r, f) for g in groups for rs, fs in GRID[g] for r in rs for f in fs)
