"""The speed limit: a bare aiohttp client, no database and no queue, run as its own process.

``python -m bench.bare_client --url U --n N --concurrency C`` POSTs N webhook bodies, built and
signed exactly as hookline builds and signs them (``hookline.payload``), with C requests in
flight over one keep-alive pool configured like hookline's sender, on the event loop
hookline's processes use (``hookline.aio.run``: uvloop where installed). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from datetime import UTC, datetime

import aiohttp

from hookline import aio, ids
from hookline.payload import build_body, build_headers

USER_AGENT = "RoleReady-Webhook/1.0"
EVENT = "resume.parsed"


def event_data(i: int) -> dict[str, object]:
    """The data every benchmark event carries (the guide's resume.parsed fields)."""
    return {
        "resumeId": f"res_{i:08d}",
        "fileName": f"resume-{i}.pdf",
        "parsedAt": "2026-01-01T00:00:00.000Z",
        "success": True,
    }


def bodies(n: int) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    user = ids.new_id()
    out = []
    for i in range(n):
        delivery_id = str(uuid.uuid4())
        out.append((delivery_id, build_body(EVENT, delivery_id, now, user, event_data(i))))
    return out


async def blast(url: str, work: list[tuple[str, bytes]], concurrency: int) -> dict[str, float]:
    secrets = [ids.new_secret()]
    connector = aiohttp.TCPConnector(limit=concurrency)
    errors = 0
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        skip_auto_headers=("Accept", "Accept-Encoding"),
        auto_decompress=False,
    ) as session:
        queue = iter(work)
        timeout = aiohttp.ClientTimeout(total=10)

        async def one_lane() -> None:
            nonlocal errors
            for delivery_id, body in queue:
                headers = build_headers(
                    body=body,
                    event=EVENT,
                    delivery_id=delivery_id,
                    secrets=secrets,
                    timestamp_s=int(time.time()),
                    user_agent=USER_AGENT,
                )
                try:
                    async with session.post(
                        url, data=body, headers=headers, allow_redirects=False, timeout=timeout
                    ) as response:
                        await response.content.read(64 * 1024)
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except (aiohttp.ClientError, TimeoutError, OSError):
                    errors += 1

        cpu0 = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    ok = statuses.get(200, 0)
    return {
        "n": len(work),
        "ok": ok,
        "errors": errors,
        "seconds": elapsed,
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    work = bodies(args.n)
    result = aio.run(blast(args.url, work, args.concurrency))  # the loop hookline runs on
    result["concurrency"] = args.concurrency
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
