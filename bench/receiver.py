"""A fast loopback webhook receiver, run as its own process.

``python -m bench.receiver --port P``. ``POST /hook`` (and ``POST /hook/<name>``: one
receiver stands for several endpoints) reads the body, records the wall-clock arrival time of
the first request of each deliveryId (header ``X-Webhook-Delivery-Id``), counts requests by
path and answers 200. Control: ``GET /_bench/count``, ``GET /_bench/arrivals``,
``POST /_bench/reset``.
"""

from __future__ import annotations

import argparse
import time

import orjson
from aiohttp import web

MAX_ARRIVALS = 2_000_000  # bounded memory, far above any run


class Counter:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.arrivals: dict[str, float] = {}
        self.paths: dict[str, int] = {}  # requests by path
        self.first_at = 0.0  # epoch seconds of the first request since the reset
        self.last_at = 0.0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        self.requests += 1
        self.bytes += len(body)
        self.paths[request.path] = self.paths.get(request.path, 0) + 1
        self.first_at = self.first_at or now
        self.last_at = now
        delivery_id = request.headers.get("X-Webhook-Delivery-Id", "")
        if delivery_id not in self.arrivals and len(self.arrivals) < MAX_ARRIVALS:
            self.arrivals[delivery_id] = now
        return web.Response(text="ok")

    async def count(self, _: web.Request) -> web.Response:
        unique = len(self.arrivals)
        payload = {
            "requests": self.requests,
            "unique": unique,
            "duplicates": self.requests - unique,
            "bytes": self.bytes,
            "paths": self.paths,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def arrivals_view(self, _: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.arrivals), content_type="application/json")

    async def reset(self, _: web.Request) -> web.Response:
        self.requests = 0
        self.bytes = 0
        self.arrivals = {}
        self.paths = {}
        self.first_at = self.last_at = 0.0
        return web.Response(text="reset")


def make_app() -> web.Application:
    counter = Counter()
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/hook", counter.hook)
    app.router.add_post("/hook/{name}", counter.hook)
    app.router.add_get("/_bench/count", counter.count)
    app.router.add_get("/_bench/arrivals", counter.arrivals_view)
    app.router.add_post("/_bench/reset", counter.reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
