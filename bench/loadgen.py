"""A small closed-loop HTTP load generator (the fallback when ``wrk`` is not installed).

Run as its own process: ``python bench/loadgen.py spec.json``; the spec gives method, url, body,
headers, duration (s) and connections. Prints one JSON object: rps, p50_ms, p99_ms, requests, bad.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    connections = int(spec["connections"])
    body = spec["body"].encode() if spec.get("body") is not None else None
    headers = dict(spec.get("headers") or {})
    latencies: list[float] = []
    bad = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one() -> None:
            nonlocal bad
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
