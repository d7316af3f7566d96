"""A small closed-loop HTTP load generator (the fallback when ``wrk`` is not installed).

Run as its own process: ``python bench/loadgen.py spec.json``; the spec gives method, url, body,
headers, duration (s) and connections. Prints one JSON object: rps, p50_ms, p99_ms, requests, bad.

Optional ``requests``: a list of ``{"body": str | null, "headers": {...}}`` sent in turn instead of
the one ``body`` / ``headers`` (e.g. a different shopper and token per request); connection ``c``
starts at entry ``c`` and every request takes the next entry of one shared cursor. Its headers are
merged over the spec's ``headers``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx


def variants(spec: dict[str, Any]) -> list[tuple[bytes | None, dict[str, str]]]:
    """The (body, headers) pairs the spec asks for, in order."""
    base = dict(spec.get("headers") or {})
    listed = spec.get("requests")
    if not listed:
        body = spec["body"].encode() if spec.get("body") is not None else None
        return [(body, base)]
    out: list[tuple[bytes | None, dict[str, str]]] = []
    for item in listed:
        body = item.get("body")
        out.append(
            (body.encode() if body is not None else None, {**base, **(item.get("headers") or {})})
        )
    return out


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    connections = int(spec["connections"])
    pairs = variants(spec)
    cursor = 0
    latencies: list[float] = []
    bad = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one() -> None:
            nonlocal bad, cursor
            body, headers = pairs[cursor % len(pairs)]
            cursor += 1
            started = time.perf_counter()
            response = await client.request(
                spec["method"], spec["url"], content=body, headers=headers
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                bad += 1

        await asyncio.gather(*(one() for _ in range(connections)))  # open the connections
        latencies.clear()
        deadline = time.perf_counter() + float(spec["duration"])
        started = time.perf_counter()

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one()

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(p * n))] * 1000 if n else float("nan")

    return {"rps": n / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "requests": n, "bad": bad}


def main() -> None:
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    print(json.dumps(asyncio.run(drive(spec))))


if __name__ == "__main__":
    main()
