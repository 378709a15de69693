"""The guide's Node.js verification example accepts every delivery hookline makes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.integration.test_publish import EXAMPLE_DATA
from tests.support import Api, wait_until

NODE = shutil.which("node")
SCRIPT = Path(__file__).with_name("guide_receiver.js")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


async def test_guide_node_example_verifies_every_event(api: Api) -> None:
    user, auth = await api.user()
    # Save a placeholder first to learn the secret, then point the webhook at the receiver.
    saved = await api.client.post(
        "/api/webhooks/config", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
    )
    secret = saved.json()["config"]["secret"]
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        env={"WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().split()
        assert first[0] == "listening"
        url = f"http://127.0.0.1:{first[1]}/webhooks"
        await api.client.post("/api/webhooks/config", headers=auth, json={"url": url})

        tricky = {
            **EXAMPLE_DATA["ats.check_completed"],
            "score": 85.0,
            "ratio": 1e-7,
            "big": 1e21,
            "neg": -0.5,
            "text": 'Zoë "quoted" \\ \n\t ✓ \u2028 \U0001f600 </script>',
            "nested": {"list": [1, 2.5, None, True, {"k": []}]},
        }
        # JavaScript lists array-index keys (0 ... 2**32-2) first, ascending, at every level.
        index_keys = ["2024", "2023", "10", "9", "0", "01", "-1", "4294967294", "4294967295", "1.5"]
        integer_keys = {
            **EXAMPLE_DATA["ats.check_completed"],
            "scoreHistory": {"2024": 85.5, "2023": 71},
            "byKey": {key: position for position, key in enumerate(index_keys)},
            "7": "a top-level index key",
            "rows": [{"10": {"2": "b", "1": "a", "x": {"9": 9, "8": 8}}, "name": "n", "3": 3}],
        }
        _, admin = await api.user("host-app", admin=True)
        sent = []
        for event, data in [
            *EXAMPLE_DATA.items(),
            ("ats.check_completed", tricky),
            ("ats.check_completed", integer_keys),
        ]:
            response = await api.client.post(
                "/api/events", headers=admin, json={"userId": user.id, "event": event, "data": data}
            )
            sent += response.json()["deliveryIds"]
        test = await api.client.post("/api/webhooks/test", headers=auth)
        assert test.json()["success"] is True, test.json()
        sent.append(test.json()["deliveryId"])

        lines: list[str] = []
        while len(lines) < len(sent):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
            lines.append(line.decode().strip())
        assert sorted(lines) == sorted(f"200 {delivery_id}" for delivery_id in sent)

        async def all_succeeded() -> bool:
            stats = (await api.client.get("/api/webhooks/stats", headers=auth)).json()
            return bool(stats["successful"] == len(sent))

        await wait_until(all_succeeded)
    finally:
        proc.terminate()
        await proc.wait()


async def test_guide_node_example_rejects_a_wrong_secret(api: Api) -> None:
    _, auth = await api.user()
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        env={"WEBHOOK_SECRET": "whsec_not-the-secret", "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().split()[1]
        url = f"http://127.0.0.1:{port}/webhooks"
        await api.client.post("/api/webhooks/config", headers=auth, json={"url": url})
        test = await api.client.post("/api/webhooks/test", headers=auth)
        assert test.json()["success"] is False and test.json()["statusCode"] == 401
    finally:
        proc.terminate()
        await proc.wait()
