"""The benchmark never rots: ``python -m bench.run --smoke`` runs end to end (receiver, bare
client, hookline on SQLite, fan-out to 10 endpoints, the scale probes) and writes every figure
to its JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import postgres_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value) and value > 0


@pytest.mark.timeout(240)
def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "smoke.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    if postgres_url():
        env["HOOKLINE_TEST_POSTGRES_URL"] = str(postgres_url())
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bare aiohttp client" in done.stdout  # the table was printed
    results = json.loads(output.read_text())

    assert results["smoke"] is True
    machine = results["machine"]
    for key in ("nproc", "memory_gib", "cpu_model", "python", "date"):
        assert machine[key], key

    bare = results["bare_client"]
    assert _positive(bare["rate"])
    assert all(run["errors"] == 0 for run in bare["runs"])

    sqlite = results["configs"]["sqlite"]
    for kind in ("python_api", "http_api"):
        figures = sqlite[f"throughput_{kind}"]
        assert figures["complete"], figures
        assert figures["failed"] == 0
        assert figures["receiver"]["unique"] == figures["n"]
        assert _positive(figures["rate"])
        assert _positive(figures["ratio_to_bare"])
        assert _positive(figures["cpu_s_total"])
        assert _positive(figures["peak_rss_mib_max"])
    drain = sqlite["drain"]
    assert drain["complete"], drain
    assert _positive(drain["rate"]) and _positive(drain["ratio_to_bare"])
    for kind in ("http_api", "python_api"):
        figures = sqlite[f"latency_{kind}"]
        assert figures["received"] == figures["published"] > 0, figures
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            assert _positive(figures[key]), key
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]

    fanout = results["fanout"]["sqlite"]
    k = fanout["endpoints"]
    assert k == 10
    for api in ("store_publish", "http_api"):
        one, many = fanout[api]["1"], fanout[api][str(k)]
        assert one["errors"] == many["errors"] == 0
        assert one["deliveries"] == one["events"] > 0
        assert many["deliveries"] == k * many["events"] > 0
        assert _positive(fanout[api]["compare"]["cost_ratio"])
    for label in ("drain_single", "drain_fanout", "drain_http"):
        drain = fanout[label]
        assert drain["complete"], drain
        assert _positive(drain["rate"]) and _positive(drain["ratio_to_bare"])
    paths = fanout["drain_fanout"]["receiver"]["paths"]
    assert sorted(paths) == sorted(f"/hook/{i}" for i in range(k))
    assert set(paths.values()) == {fanout["store_publish"][str(k)]["events"]}  # each got all

    scale = results["scale"]["sqlite"]
    for label in ("backlog_small", "backlog_large"):
        assert scale[label]["complete"], scale[label]
        assert _positive(scale[label]["rate"])
        assert _positive(scale[label]["worker_peak_rss_mib"])
    assert _positive(scale["backlog_ratio"])
    for queries in (scale["queries"], scale["queries_among_other_users"]):
        for label in ("logs_first_page", "logs_deep_offset", "stats"):
            assert queries[label]["non_200"] == 0
            assert _positive(queries[label]["p99_ms"])

    frontdoor = results["frontdoor"]["sqlite"]
    for label in ("single", "single_keyed", "batch"):
        figures = frontdoor[label]
        assert figures["errors"] == 0 and figures["accepted"] > 0, figures
        assert _positive(figures["rate"]) and _positive(figures["ratio_to_bare"])
        assert _positive(figures["api_cpu_ms_per_event"])
    mix = frontdoor["mix"]
    assert mix["clients"] > 0 and _positive(mix["rate"]), mix
    assert mix["errors"] == sum(mix["errors_by_status"].values())
    assert _positive(mix["api_cpu_ms_per_request"])
    for route in ("publish", "logs", "stats", "config"):
        one = mix["routes"][route]
        assert one["requests"] > 0 and _positive(one["rate"]), route
        assert sum(one["statuses"].values()) == one["requests"]
        assert _positive(one["latency"]["p99_ms"])
        assert one["latency"]["p50_ms"] <= one["latency"]["p99_ms"] <= one["latency"]["max_ms"]
    assert sum(one["requests"] for one in mix["routes"].values()) == mix["requests"]

    names = {target["what"] for target in results["targets"]}
    assert "frontdoor API cpu per event (sqlite)" in names
    assert {"mix errors (sqlite)", "mix publish p99 (sqlite)", "mix config p99 (sqlite)"} <= names
    assert "throughput sqlite (http_api) / bare" in names
    assert "drain sqlite / bare" in names
    assert "latency max sqlite (http_api)" in names
    assert "latency p99 sqlite (http_api)" in names
    assert "backlog drain rate, big / small (sqlite)" in names
    assert "publish cost, 10 endpoints / 1 (sqlite, store_publish)" in names
    assert all(isinstance(target["met"], bool) for target in results["targets"])
