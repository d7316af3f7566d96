"""The request path's own pieces: ``ShopperReads`` (the shopper statement's connections) with
stand-in connections, so every interleaving is driven by the test; and the objects ``answer()``
builds without their dataclass ``__init__``, which must equal the ones it would build."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

import pytest

from domain.recommend.serving import (
    Ask,
    Item,
    ShopperReads,
    _item,
    _request,
    _session,
    recommendation_id,
)


class Conn:
    """A connection whose statement returns when the test says so (``gate``), or at once."""

    def __init__(self, number: int, gate: asyncio.Event | None) -> None:
        self.number = number
        self.gate = gate
        self.statements = 0
        self.closed = False
        self.terminated = False

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        assert not self.closed, "a closed connection was handed out"
        self.statements += 1
        if self.gate is not None:
            await self.gate.wait()
        return [(sql, self.number, *args)]

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = self.terminated = True

    async def close(self, **_: Any) -> None:
        self.closed = True


class Connector:
    def __init__(self) -> None:
        self.made: list[Conn] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> Conn:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("connection refused")
        conn = Conn(len(self.made), self.gate)
        self.made.append(conn)
        return conn


def held(reads: ShopperReads) -> int:
    return reads.open - reads.idle


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_size_connections_reused_by_every_request() -> None:
    """Given 2 places, when 20 statements run at once, then 2 connections serve them all and
    stay open, none held."""
    connect = Connector()
    reads = ShopperReads(connect, 2)
    rows = await asyncio.gather(*(reads.fetch("q", [i]) for i in range(20)))
    assert [r[0][2] for r in rows] == list(range(20))
    assert len(connect.made) == 2
    assert sum(c.statements for c in connect.made) == 20
    assert (reads.open, reads.idle) == (2, 2)


async def test_a_statement_cancelled_midway_closes_its_connection() -> None:
    """Given a statement waiting for its reply, when its request is cancelled, then that
    connection is terminated (never handed on) and the next request opens a fresh one."""
    connect = Connector()
    connect.gate = asyncio.Event()
    reads = ShopperReads(connect, 1)
    task = asyncio.ensure_future(reads.fetch("q", []))
    await settle()
    assert connect.made[0].statements == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert connect.made[0].terminated
    assert (reads.open, reads.idle) == (0, 0)
    connect.gate.set()
    assert (await reads.fetch("q", []))[0][1] == 1  # the second connection
    assert (reads.open, reads.idle) == (1, 1)


async def test_a_failed_statement_closes_its_connection_and_frees_its_place() -> None:
    connect = Connector()
    reads = ShopperReads(connect, 1)
    await reads.fetch("q", [])

    async def broken(sql: str, *args: Any) -> list[Any]:
        raise RuntimeError("protocol error")

    connect.made[0].fetch = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await reads.fetch("q", [])
    assert connect.made[0].terminated and (reads.open, reads.idle) == (0, 0)
    assert (await reads.fetch("q", []))[0][1] == 1


async def test_waiting_requests_get_the_connection_or_its_place() -> None:
    """Given 1 place in use and two requests waiting, when the statement in use is cancelled,
    then the first waiter opens a connection in its place and the second gets that one after."""
    connect = Connector()
    connect.gate = asyncio.Event()
    reads = ShopperReads(connect, 1)
    first = asyncio.ensure_future(reads.fetch("q", [1]))
    await settle()
    second = asyncio.ensure_future(reads.fetch("q", [2]))
    third = asyncio.ensure_future(reads.fetch("q", [3]))
    await settle()
    assert len(connect.made) == 1 and reads.open == 1
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    connect.gate.set()
    assert (await second)[0][1:] == (1, 2)
    assert (await third)[0][1:] == (1, 3)
    assert len(connect.made) == 2 and (reads.open, reads.idle) == (1, 1)


async def test_a_request_cancelled_while_waiting_leaves_no_trace() -> None:
    connect = Connector()
    connect.gate = asyncio.Event()
    reads = ShopperReads(connect, 1)
    running = asyncio.ensure_future(reads.fetch("q", [1]))
    await settle()
    waiting = asyncio.ensure_future(reads.fetch("q", [2]))
    await settle()
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    connect.gate.set()
    await running
    assert (reads.open, reads.idle) == (1, 1) and not reads._waiters


async def test_a_request_cancelled_just_as_it_was_handed_a_connection_gives_it_back() -> None:
    connect = Connector()
    connect.gate = asyncio.Event()
    reads = ShopperReads(connect, 1)
    running = asyncio.ensure_future(reads.fetch("q", [1]))
    await settle()
    waiting = asyncio.ensure_future(reads.fetch("q", [2]))
    await settle()
    connect.gate.set()
    await running  # hands its connection to the waiter's future ...
    waiting.cancel()  # ... which is cancelled before it runs
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert (reads.open, reads.idle) == (1, 1)
    assert (await reads.fetch("q", [3]))[0][1:] == (0, 3)


async def test_a_failed_connect_frees_its_place() -> None:
    connect = Connector()
    connect.fail = True
    reads = ShopperReads(connect, 1)
    with pytest.raises(OSError):
        await reads.fetch("q", [])
    assert reads.open == 0
    connect.fail = False
    await reads.fetch("q", [])
    assert (reads.open, reads.idle) == (1, 1)


async def test_a_connection_closed_by_the_server_is_not_handed_out() -> None:
    connect = Connector()
    reads = ShopperReads(connect, 2)
    await reads.fetch("q", [])
    connect.made[0].closed = True
    assert (await reads.fetch("q", []))[0][1] == 1
    assert (reads.open, reads.idle) == (1, 1)


async def test_close_closes_idle_then_busy_connections_and_refuses_more() -> None:
    connect = Connector()
    reads = ShopperReads(connect, 2)
    await asyncio.gather(reads.fetch("q", []), reads.fetch("q", []))
    gate = asyncio.Event()
    for conn in connect.made:
        conn.gate = gate
    busy = asyncio.ensure_future(reads.fetch("q", []))
    await settle()
    await reads.close()
    assert sorted(c.closed for c in connect.made) == [False, True]  # the idle one, not the busy
    gate.set()
    await busy
    assert all(c.closed for c in connect.made) and (reads.open, reads.idle) == (0, 0)
    with pytest.raises(RuntimeError):
        await reads.fetch("q", [])


def test_requests_and_items_equal_the_dataclasses() -> None:
    """The objects built without ``__init__`` equal, hash and read like the dataclasses'."""
    from recommend.serving import RankRequest, Recent

    ask = Ask(surface="recommendations", scenario="CART", product=7, cart=(3, 4), first=12)
    recent = [(5, "view", 0.0), (6, "add_to_cart", 61.5)]
    made = _request(ask, "42", True, recent, {9, 8})
    assert made == RankRequest(
        scenario="CART",
        user="42",
        personal=True,
        product="7",
        cart=("3", "4"),
        recent=(Recent("5", "view", 0.0), Recent("6", "add_to_cart", 61.5)),
        exclude=frozenset({"8", "9"}),
        k=12,
    )
    empty = _request(Ask(surface="recommendations", scenario=None), None, False, [], frozenset())
    assert empty == RankRequest(scenario="HOME", user=None, personal=False, k=10)
    assert hash(empty) == hash(RankRequest(scenario="HOME", user=None, personal=False, k=10))
    item = _item(None, 0.5, "popular", None, None)  # type: ignore[arg-type]
    assert item == Item(None, 0.5, "popular")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        item.score = 1.0  # type: ignore[misc]


def test_session_signals_client_first_each_product_once_at_most_twenty() -> None:
    stored = [(2, "add_to_cart", 30.0), (5, "view", 40.0), (2, "view", 50.0)]
    assert _session((1, 2, 1), stored) == [
        (1, "view", 0.0),
        (2, "view", 0.0),
        (5, "view", 40.0),
    ]
    assert _session(tuple(range(30)), stored) == [(p, "view", 0.0) for p in range(20)]


def test_recommendation_ids_are_random_version_4_uuids() -> None:
    ids = {recommendation_id() for _ in range(2000)}
    assert len(ids) == 2000
    for rid in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        parsed = uuid.UUID(hex=rid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize(
    ("url", "ssl"),
    [
        ("postgresql+asyncpg://shop:pw@127.0.0.1:6543/precis", False),
        ("postgresql+asyncpg://shop:pw@127.0.0.1:6543/precis?ssl=require", "require"),
        ("postgresql+asyncpg://shop:pw@db.internal:6543/precis", None),
    ],
)
async def test_the_reads_connect_like_the_engine(url: str, ssl: object) -> None:
    """The shopper reads' connections get what the engine's get: the URL's address, user,
    database and options, the statement timeout, and no TLS to this machine unless asked."""
    from domain.db import asyncpg_connect_args, make_engine
    from domain.settings import Settings

    settings = Settings(
        database_url=url + ("&" if "?" in url else "?") + "prepared_statement_cache_size=7",
        statement_timeout_ms=1234,
        _env_file=None,  # type: ignore[call-arg]
    )
    engine = make_engine(settings)
    try:
        kwargs = asyncpg_connect_args(engine, settings)
    finally:
        await engine.dispose()
    assert {k: kwargs[k] for k in ("host", "port", "user", "password", "database")} == {
        "host": url.split("@")[1].split(":")[0],
        "port": 6543,
        "user": "shop",
        "password": "pw",
        "database": "precis",
    }
    assert kwargs["server_settings"] == {"statement_timeout": "1234", "application_name": "precis"}
    assert kwargs.get("ssl") == ssl
    assert kwargs["statement_cache_size"] == 7
    assert "prepared_statement_cache_size" not in kwargs


async def test_a_stopped_server_opens_no_new_reads_until_started_again() -> None:
    """After ``stop`` a late request fails its read instead of opening connections that nothing
    would close; ``start`` makes a new set."""
    from domain.db import Database
    from domain.recommend.serving import RecommendationServer
    from domain.settings import Settings

    settings = Settings(
        database_url="postgresql+asyncpg://shop:pw@127.0.0.1:6543/precis",
        _env_file=None,  # type: ignore[call-arg]
    )
    db = Database(settings)
    server = RecommendationServer(db, settings)
    try:
        server.start(warm=False)
        first = server.shopper_reads()
        await server.stop()
        assert server.shopper_reads() is first and first.closed
        with pytest.raises(RuntimeError, match="closed"):
            await first.fetch("SELECT 1", ())
        assert first.open == 0  # nothing was opened
        server.start(warm=False)
        again = server.shopper_reads()
        assert again is not first and not again.closed
        await server.stop()
    finally:
        await db.dispose()
