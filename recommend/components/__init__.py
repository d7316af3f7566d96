"""Recommendation components by name, and ``name(key=value,...)`` specs for the command line."""

from __future__ import annotations

import inspect
import re
from typing import Any

from recommend.components.base import Component
from recommend.components.content import Content
from recommend.components.factors import ALS, BPR
from recommend.components.neighbors import EASE, ItemKNN, Session, session_scores
from recommend.components.popularity import Popularity, Trending
from recommend.components.surprise_models import SURPRISE, SurpriseComponent
from recommend.components.together import BoughtTogether

REGISTRY: dict[str, type[Component]] = {
    c.name: c
    for c in (
        Popularity,
        Trending,
        ItemKNN,
        EASE,
        ALS,
        BPR,
        Content,
        BoughtTogether,
        Session,
        *SURPRISE,
    )
}
# What `precis recommend evaluate` runs when --algorithms is not given.
DEFAULT_ALGORITHMS = (
    "popularity",
    "trending",
    "itemknn",
    "ease",
    "als",
    "bpr",
    "content",
    "together",
    "session",
    "svd",
)

_SPEC = re.compile(r"^\s*([a-z+_]+)\s*(?:\((.*)\))?\s*$", re.I)
POSITIVE = frozenset({"l2", "half_life_days", "alpha", "learning_rate", "decay"})
ALIASES = {"svd++": "svdpp", "pop": "popularity", "knn": "itemknn"}


class SpecError(ValueError):
    pass


def _value(raw: str) -> Any:
    v = raw.strip()
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def split_specs(text: str) -> list[str]:
    """``a,b(x=1,y=2),c`` -> ``["a", "b(x=1,y=2)", "c"]`` (commas inside parentheses kept)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise SpecError(f"unbalanced parentheses in {text!r}")
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def make(spec: str) -> Component:
    """A component from ``name`` or ``name(param=value,...)``, e.g. ``ease(l2=300)``,
    ``knnbaseline(user_based=true,sim=pearson_baseline,k=40)``."""
    m = _SPEC.match(spec)
    if not m:
        raise SpecError(f"bad algorithm {spec!r}: use name or name(param=value,...)")
    name = ALIASES.get(m.group(1).lower(), m.group(1).lower())
    cls = REGISTRY.get(name)
    if cls is None:
        raise SpecError(f"unknown algorithm {name!r}; known: {', '.join(sorted(REGISTRY))}")
    params: dict[str, Any] = {}
    if m.group(2):
        for part in m.group(2).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise SpecError(f"bad parameter {part!r} in {spec!r}: use key=value")
            key, raw = part.split("=", 1)
            params[key.strip()] = _value(raw)
    defaults = {
        n: p.default
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    for key, value in params.items():
        if value == "":
            raise SpecError(f"{spec}: {key} needs a value")
        default = defaults.get(key)
        if isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"{spec}: {key} must be a number")
            if isinstance(default, int) and not isinstance(value, int):
                raise SpecError(f"{spec}: {key} must be an integer")
            least = 0 if key == "seed" or isinstance(default, float) else 1
            if value < least or (key in POSITIVE and value <= 0):
                raise SpecError(
                    f"{spec}: {key} must be {'above' if key in POSITIVE else 'at least'} {least}"
                )
    try:
        component = cls(**params)
        if isinstance(component, SurpriseComponent):
            component.check()
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{spec}: {exc}") from exc
    component.spec = f"{name}({m.group(2).replace(' ', '')})" if m.group(2) else name
    return component


__all__ = [
    "DEFAULT_ALGORITHMS",
    "REGISTRY",
    "Component",
    "SpecError",
    "SurpriseComponent",
    "make",
    "session_scores",
    "split_specs",
]
