"""Interactions: who touched which product when, and how much it counts.

Three sources feed the same :class:`Interactions` table:

* an interactions CSV ``user_id,item_id,timestamp[,rating|weight]`` (ISO 8601 or Unix seconds);
* an order-lines CSV shaped like the Online Retail sample
  (``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country``);
* behaviour events and orders from the database, weighted by kind and decayed by age with
  :class:`WeightSettings`: as columns (:func:`from_columns`, vectorised, what training uses) or as
  one mapping per event (:func:`from_events`, the row loop kept for tests and tools; the two agree
  exactly).

Rows are events; the evaluation protocol (``recommend.protocol``) collapses them to (user, item)
pairs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)


class DataError(ValueError):
    """An interactions file or event set that cannot be used; the message says why and where."""


@dataclass(frozen=True)
class WeightSettings:
    """How much one event counts. Explicit review ratings (1-5) win over the kind's weight.

    Defaults: a view 1, a favourite 2, an add to cart 3, a purchase 5; an event loses half its
    weight every ``half_life_days`` (90) days of age; events older than ``max_age_days`` (395, the
    raw-event retention) are ignored.
    """

    view: float = 1.0
    favorite: float = 2.0
    add_to_cart: float = 3.0
    purchase: float = 5.0
    half_life_days: float = 90.0
    max_age_days: float = 395.0

    def kind_weight(self, kind: str) -> float | None:
        return {
            "view": self.view,
            "favorite": self.favorite,
            "add_to_cart": self.add_to_cart,
            "purchase": self.purchase,
        }.get(kind)

    def decay(self, age_days: float) -> float:
        if self.half_life_days <= 0:
            return 1.0
        # numpy's power, as the vectorised path computes it (libm's pow differs in the last bit
        # on some machines), so the row loop and the columns agree exactly.
        return float(np.power(0.5, np.float64(max(age_days, 0.0) / self.half_life_days)))


def event_weight(
    kind: str,
    *,
    age_days: float,
    rating: float | None = None,
    settings: WeightSettings | None = None,
) -> float | None:
    """Weight of one event, or None when it does not count (unknown kind, too old).

    A review's rating is used as is (the explicit rating wins); other kinds take their weight times
    the age decay."""
    s = settings or WeightSettings()
    if age_days > s.max_age_days:
        return None
    if rating is not None:
        return float(rating)
    w = s.kind_weight(kind)
    return None if w is None else w * s.decay(age_days)


@dataclass
class Interactions:
    """One row per event. ``weight`` is what the event counts; ``rating`` is NaN unless explicit.

    ``basket`` groups events that happened together (an invoice, an order); ``item_text`` and
    ``item_category`` describe items for the content component and diversity."""

    frame: pd.DataFrame  # columns: user, item, time (float seconds), weight, rating, basket
    item_text: dict[str, str] = field(default_factory=dict)
    item_category: dict[str, str] = field(default_factory=dict)
    source: str = ""
    has_ratings: bool = False

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        return int(self.frame["user"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.frame["item"].nunique())

    def subset(self, mask: np.ndarray | pd.Series) -> Interactions:
        return Interactions(
            self.frame.loc[np.asarray(mask)].reset_index(drop=True),
            self.item_text,
            self.item_category,
            self.source,
            self.has_ratings,
        )


def make_interactions(
    users: Sequence[str] | np.ndarray,
    items: Sequence[str] | np.ndarray,
    times: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    ratings: Sequence[float] | np.ndarray | None = None,
    baskets: Sequence[str] | np.ndarray | None = None,
    *,
    item_text: Mapping[str, str] | None = None,
    item_category: Mapping[str, str] | None = None,
    source: str = "",
) -> Interactions:
    """Build :class:`Interactions` from parallel sequences (tests, events, generators)."""
    n = len(users)
    frame = pd.DataFrame(
        {
            "user": pd.Series(users, dtype=object).astype(str),
            "item": pd.Series(items, dtype=object).astype(str),
            "time": np.asarray(times, dtype=np.float64),
            "weight": np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64),
            "rating": np.full(n, np.nan) if ratings is None else np.asarray(ratings, np.float64),
            "basket": pd.Series(baskets, dtype=object).astype(str) if baskets is not None else "",
        }
    )
    if baskets is None and n:
        # Without order numbers, one user's events of one UTC day form a basket (an integer key).
        day = np.floor_divide(frame["time"].to_numpy(), 86400).astype(np.int64)
        day -= day.min()
        frame["basket"] = pd.factorize(frame["user"])[0].astype(np.int64) * (day.max() + 1) + day
    return Interactions(
        frame,
        dict(item_text or {}),
        dict(item_category or {}),
        source,
        has_ratings=ratings is not None,
    )


def parse_time(value: str) -> float:
    """Unix seconds (int or float) or ISO 8601 (naive means UTC) to float seconds."""
    v = value.strip()
    if not v:
        raise ValueError("empty timestamp")
    try:
        return float(v) if _looks_numeric(v) else _iso(v)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"bad timestamp {value!r} (ISO 8601 or Unix seconds)") from exc


def _looks_numeric(v: str) -> bool:
    try:
        x = float(v)
    except ValueError:
        return False
    return math.isfinite(x)


def _iso(v: str) -> float:
    dt = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def load(path: Path | str) -> Interactions:
    """Load an interactions or order-lines CSV, the format told by its header."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, not a CSV file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return loads(text, source=str(p))


def loads(text: str, *, source: str = "<data>") -> Interactions:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise DataError(f"{source}: empty file (expected a CSV header)")
    names = [h.strip() for h in header]
    if set(RETAIL_COLUMNS) <= set(names):
        result = _load_retail(reader, names, source)
    elif set(INTERACTION_COLUMNS) <= {n.lower() for n in names}:
        lowered = [n.lower() for n in names]
        fast = _fast_interactions(text, lowered, source)
        result = fast if fast is not None else _load_interactions(reader, lowered, source)
    else:
        missing = [c for c in INTERACTION_COLUMNS if c not in {n.lower() for n in names}]
        raise DataError(
            f"{source}: unknown columns {names}: expected user_id,item_id,timestamp[,rating|weight] "
            f"(missing {', '.join(missing)}) or an order-lines file with "
            f"{','.join(RETAIL_COLUMNS)}"
        )
    if len(result) == 0:
        raise DataError(f"{source}: no usable interactions")
    return result


def _cells(row: list[str], index: Mapping[str, int], line: int, source: str) -> dict[str, str]:
    if len(row) <= max(index.values()):
        raise DataError(
            f"{source}:{line}: {len(row)} fields, expected at least {max(index.values()) + 1}"
        )
    return {name: row[i].strip() for name, i in index.items()}


def _fast_interactions(text: str, names: list[str], source: str) -> Interactions | None:
    """The interactions CSV parsed by pandas, vectorised; None when anything is unusual (the row
    loop then reads the file again and names the line). Same result as the loop otherwise."""
    if len(set(names)) != len(names) or ("rating" in names and "weight" in names):
        return None
    extra = "rating" if "rating" in names else "weight" if "weight" in names else None
    wanted = [*INTERACTION_COLUMNS, *([extra] if extra else [])]
    try:
        df = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            usecols=[names.index(n) for n in wanted],
            skip_blank_lines=True,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if df.empty or df.isna().any().any():
        return None
    df.columns = [names[i] for i in sorted(names.index(n) for n in wanted)]
    # Stripping a million cells costs seconds: only when a field can have edge whitespace.
    edges = text[:1] in (" ", "\t") or any(
        m in text for m in ('"', "\t", " ,", ", ", " \n", "\n ", " \r")
    )
    cols = {n: (df[n].str.strip() if edges else df[n]) for n in wanted}
    if (cols["user_id"] == "").any() or (cols["item_id"] == "").any():
        return None
    ts = cols["timestamp"]
    numeric = pd.to_numeric(ts, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(numeric)
    times = numeric.copy()
    if not finite.all():
        parsed = pd.to_datetime(ts[~finite], format="ISO8601", utc=True, errors="coerce")
        if parsed.isna().any():
            return None
        times[~finite] = ((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            np.float64
        )
    values = None
    if extra:
        values = pd.to_numeric(cols[extra], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(values).all() or (extra == "weight" and (values <= 0).any()):
            return None
    return make_interactions(
        cols["user_id"].tolist(),
        cols["item_id"].tolist(),
        times,
        weights=values,
        ratings=values if extra == "rating" else None,
        source=source,
    )


def _load_interactions(reader: Iterable[list[str]], names: list[str], source: str) -> Interactions:
    if "rating" in names and "weight" in names:
        raise DataError(f"{source}: give either a rating or a weight column, not both")
    extra = "rating" if "rating" in names else "weight" if "weight" in names else None
    wanted = [*INTERACTION_COLUMNS, *([extra] if extra else [])]
    index = {n: names.index(n) for n in wanted}
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    values: list[float] = []
    for line, row in enumerate(reader, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        c = _cells(row, index, line, source)
        if not c["user_id"] or not c["item_id"]:
            raise DataError(f"{source}:{line}: empty user_id or item_id")
        try:
            t = parse_time(c["timestamp"])
        except ValueError as exc:
            raise DataError(f"{source}:{line}: {exc}") from exc
        if extra:
            try:
                v = float(c[extra])
            except ValueError:
                raise DataError(f"{source}:{line}: {extra} {c[extra]!r} is not a number") from None
            if not math.isfinite(v):
                raise DataError(f"{source}:{line}: {extra} must be a finite number")
            if extra == "weight" and v <= 0:
                raise DataError(f"{source}:{line}: weight must be above 0")
            values.append(v)
        users.append(c["user_id"])
        items.append(c["item_id"])
        times.append(t)
    return make_interactions(
        users,
        items,
        times,
        weights=values if extra else None,
        ratings=values if extra == "rating" else None,
        source=source,
    )


def _load_retail(reader: Iterable[list[str]], names: list[str], source: str) -> Interactions:
    """Order lines: a customer bought a product. Guest rows (no CustomerID), cancellations
    (invoice ``C...``) and non-positive quantities are dropped; each kept line counts 1; an invoice
    is a basket; descriptions are item text."""
    index = {n: names.index(n) for n in RETAIL_COLUMNS}
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    baskets: list[str] = []
    text: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        c = _cells(row, index, line, source)
        try:
            qty = float(c["Quantity"])
        except ValueError:
            raise DataError(
                f"{source}:{line}: Quantity {c['Quantity']!r} is not a number"
            ) from None
        if c["StockCode"] and c["Description"]:
            text.setdefault(c["StockCode"], c["Description"])
        if not c["CustomerID"] or c["InvoiceNo"].upper().startswith("C") or qty <= 0:
            continue
        try:
            t = parse_time(c["InvoiceDate"])
        except ValueError as exc:
            raise DataError(f"{source}:{line}: InvoiceDate: {exc}") from exc
        users.append(c["CustomerID"].removesuffix(".0"))
        items.append(c["StockCode"])
        times.append(t)
        baskets.append(c["InvoiceNo"])
    return make_interactions(users, items, times, baskets=baskets, item_text=text, source=source)


def from_events(
    rows: Iterable[Mapping[str, object]],
    *,
    now: datetime,
    settings: WeightSettings | None = None,
) -> Interactions:
    """Interactions from stored behaviour events (dicts with ``user``, ``item``, ``type``,
    ``occurred_at``, optional ``rating`` and ``basket``), weighted by kind and decayed by age.
    Events of kinds that do not count (or too old) are skipped."""
    s = settings or WeightSettings()
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    weights: list[float] = []
    ratings: list[float] = []
    baskets: list[str] = []
    for r in rows:
        at = r["occurred_at"]
        assert isinstance(at, datetime)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        age = (now - at).total_seconds() / 86400
        rating = r.get("rating")
        w = event_weight(
            str(r["type"]),
            age_days=age,
            rating=float(rating) if isinstance(rating, int | float) else None,
            settings=s,
        )
        if w is None or r.get("item") is None or r.get("user") is None:
            continue
        users.append(str(r["user"]))
        items.append(str(r["item"]))
        times.append(at.timestamp())
        weights.append(w)
        ratings.append(float(rating) if isinstance(rating, int | float) else np.nan)
        baskets.append(str(r.get("basket") or f"{r['user']}@{int(at.timestamp() // 86400)}"))
    return make_interactions(
        users,
        items,
        times,
        weights,
        ratings if any(not math.isnan(x) for x in ratings) else None,
        baskets,
        source="events",
    )


KINDS = ("view", "favorite", "add_to_cart", "purchase")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(at: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (naive means UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    d = at - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def times_us(values: Any) -> np.ndarray:
    """Event times as int64 microseconds since the epoch: a ``datetime64`` array (naive means UTC),
    a pandas datetime Series or index (an aware one is converted to UTC), or datetimes."""
    arr = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else values
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "M":
        return np.asarray(arr.astype("datetime64[us]").view(np.int64))
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return np.asarray(idx.as_unit("us").asi8, dtype=np.int64)


def _codes(values: Any) -> tuple[np.ndarray, list[Any]]:
    """(codes, distinct values); a missing value (None, NaN) gets code -1. A ``pd.Categorical``
    is taken as it is (no hashing)."""
    if isinstance(values, pd.Categorical):
        return values.codes.astype(np.int64), values.categories.tolist()
    plain = isinstance(values, np.ndarray) and values.dtype.kind in "iuf"
    arr = values if plain else np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    return codes.astype(np.int64), uniques.tolist()


def _as_strings(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values as ``str``): each distinct value converted once."""
    codes, uniques = _codes(values)
    return codes, np.array([str(u) for u in uniques], dtype=object)


def from_columns(
    user: Any,
    item: Any,
    kind: Any,
    time: Any,
    rating: Any = None,
    basket: Any = None,
    *,
    now: datetime,
    settings: WeightSettings | None = None,
    source: str = "events",
) -> Interactions:
    """:func:`from_events` on parallel columns, vectorised (same rows, same frame, exactly).

    ``user``/``item``: ids (any type; shown as ``str``; a missing one drops the row); ``kind``:
    event type names; ``time``: see :func:`times_us`; ``rating``: numbers with NaN (or None) for
    no explicit rating, None for no column; ``basket``: basket keys with None (or "") for none,
    where the user's UTC day is the basket, as in :func:`from_events`. Any column may be a
    ``pd.Categorical`` (codes are used as they are: cheaper than hashing millions of texts). A NaN rating is no rating
    here (the row loop would take it as a NaN weight)."""
    s = settings or WeightSettings()
    us = times_us(time)
    n = len(us)
    ucode, unames = _as_strings(user)
    icode, inames = _as_strings(item)
    kcode, kinds = _codes(kind)
    table = np.array([s.kind_weight(str(k)) for k in kinds] + [None], dtype=np.float64)
    kw = table[kcode]  # code -1 (a missing kind) picks the trailing NaN
    r = _ratings(rating, n)
    if not (len(ucode) == len(icode) == len(kcode) == len(r) == n):
        raise ValueError("from_columns: columns of different lengths")
    rated = ~np.isnan(r)
    # The same float operations as the row loop: exact microsecond difference, then / 1e6 / 86400.
    age = (np.int64(_epoch_us(now)) - us) / 1e6 / 86400
    if s.half_life_days <= 0:
        decay = np.ones(n)
    else:
        decay = np.power(0.5, np.maximum(age, 0.0) / s.half_life_days)
    weight = np.where(rated, r, kw * decay)
    keep = ~(age > s.max_age_days) & (rated | ~np.isnan(kw)) & (ucode >= 0) & (icode >= 0)
    idx = np.flatnonzero(keep)
    us, ucode, icode, r, rated = us[idx], ucode[idx], icode[idx], r[idx], rated[idx]
    times = us / 1e6
    users = unames[ucode]
    # Baskets: the given key, else "<user>@<UTC day>" (each distinct key made into text once).
    day = np.floor_divide(times, 86400).astype(np.int64)
    if basket is None:
        bcode = np.full(len(idx), -1, np.int64)
        bnames = np.empty(0, dtype=object)
    else:
        if len(basket) != n:
            raise ValueError("from_columns: columns of different lengths")
        bcode, values = _codes(basket)
        bcode = bcode[idx]
        bnames = np.array([str(b) for b in values], dtype=object)
        falsy = np.flatnonzero([not b for b in values])  # "" or 0: no basket, as in the loop
        if len(falsy):
            bcode[np.isin(bcode, falsy)] = -1
    own = bcode < 0
    baskets = np.empty(len(idx), dtype=object)
    baskets[~own] = bnames[bcode[~own]]
    if own.any():
        d0 = int(day[own].min())
        span = int(day[own].max()) - d0 + 1
        pcode, puniq = pd.factorize(ucode[own] * span + (day[own] - d0))
        text = np.array(
            [f"{unames[k // span]}@{k % span + d0}" for k in puniq.tolist()], dtype=object
        )
        baskets[own] = text[pcode]
    return make_interactions(
        users,
        inames[icode],
        times,
        weight[idx],
        r if rated.any() else None,
        baskets,
        source=source,
    )


def _ratings(rating: Any, n: int) -> np.ndarray:
    """Explicit ratings as float64 with NaN for none: a float array as is; otherwise each value
    that is a number (as the row loop tests it) becomes a float, anything else none."""
    if rating is None:
        return np.full(n, np.nan)
    if isinstance(rating, np.ndarray) and rating.dtype.kind in "fiu":
        return rating.astype(np.float64)
    return np.array(
        [float(x) if isinstance(x, int | float) else np.nan for x in rating], dtype=np.float64
    )
