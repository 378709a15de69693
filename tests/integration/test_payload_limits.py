"""What data may hold, by every door: nesting depth and size over HTTP and through publish()."""

from __future__ import annotations

from typing import Any

import pytest

import hookline
from tests.integration.test_publish import EXAMPLE_DATA, count_deliveries
from tests.support import Api, Receiver

LIMIT = "32 levels"
EVENT = "resume.parsed"


def nested(levels: int) -> dict[str, Any]:
    """The event's required fields plus a value ``levels`` objects and arrays deep inside data
    (data itself being the first level)."""
    deep: Any = 1
    for level in range(levels - 1):
        deep = [deep] if level % 2 else {"k": deep}
    return {**EXAMPLE_DATA[EVENT], "deep": deep}


def raw_body(user_id: str, levels: int) -> bytes:
    """A publish request whose data nests ``levels`` deep, written by hand (json.dumps
    itself recurses and could not write the deepest ones)."""
    inner = b'{"k":' * (levels - 1) + b"1" + b"}" * (levels - 1)
    return (
        b'{"userId":"' + user_id.encode() + b'","event":"' + EVENT.encode() + b'","data":'
        b'{"resumeId":"r","fileName":"a.pdf","parsedAt":"t","success":true,"deep":' + inner + b"}}"
    )


async def test_http_accepts_data_at_the_nesting_limit(api: Api, receiver: Receiver) -> None:
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events", headers=admin, json={"userId": user.id, "event": EVENT, "data": nested(32)}
    )
    assert response.status_code == 202, response.text
    assert len(response.json()["deliveryIds"]) == 1


@pytest.mark.parametrize("levels", [33, 70, 700])
async def test_http_refuses_deeper_data_with_422_naming_the_limit(
    api: Api, receiver: Receiver, levels: int
) -> None:
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events",
        headers={**admin, "Content-Type": "application/json"},
        content=raw_body(user.id, levels),
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False
    assert LIMIT in body["error"] and LIMIT in body["fields"]["data"]
    assert await count_deliveries(api) == 0


async def test_http_refuses_data_too_deep_to_parse_with_400(api: Api) -> None:
    user, _ = await api.user()
    _, admin = await api.user("host-app", admin=True)
    response = await api.client.post(
        "/api/events",
        headers={**admin, "Content-Type": "application/json"},
        content=raw_body(user.id, 5000),
    )
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False


@pytest.mark.parametrize("levels", [33, 700, 5000])
async def test_publish_refuses_deep_data(api: Api, levels: int) -> None:
    user, _ = await api.user()  # no webhook: refused all the same, before anything else
    engine = api.store.db.writer
    with pytest.raises(hookline.PayloadError, match=LIMIT):
        await hookline.publish(engine, user.id, EVENT, nested(levels))
    with pytest.raises(hookline.PayloadError, match=f"events\\[1\\]: .*{LIMIT}"):
        await hookline.publish_many(
            engine,
            [(user.id, EVENT, EXAMPLE_DATA[EVENT]), (user.id, EVENT, nested(levels))],
        )
    assert await count_deliveries(api) == 0


async def test_publish_refuses_data_over_the_size_limit(api: Api, receiver: Receiver) -> None:
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    engine = api.store.db.writer
    big = {**EXAMPLE_DATA[EVENT], "blob": "x" * (256 * 1024)}
    with pytest.raises(hookline.PayloadError, match="the limit is 262144 bytes"):
        await hookline.publish(engine, user.id, EVENT, big)
    with pytest.raises(hookline.PayloadError, match=r"events\[0\]: .*the limit is 1000 bytes"):
        await hookline.publish_many(engine, [(user.id, EVENT, big)], max_data_bytes=1000)
    assert await count_deliveries(api) == 0
    # The limit is a keyword argument, like Settings.max_event_data_bytes for HTTP.
    result = await hookline.publish(engine, user.id, EVENT, big, max_data_bytes=512 * 1024)
    assert len(result.delivery_ids) == 1
    (results,) = await hookline.publish_many(engine, [(user.id, EVENT, EXAMPLE_DATA[EVENT])])
    assert len(results.delivery_ids) == 1


async def test_publish_refuses_unrepresentable_numbers(api: Api) -> None:
    user, _ = await api.user()  # no webhook: refused all the same
    engine = api.store.db.writer
    for value in (2**53, float("nan"), 10**5000):
        data = {**EXAMPLE_DATA[EVENT], "n": value}
        with pytest.raises(hookline.PayloadError):
            await hookline.publish(engine, user.id, EVENT, data)
        with pytest.raises(hookline.PayloadError, match=r"events\[0\]: "):
            await hookline.publish_many(engine, [(user.id, EVENT, data)])


@pytest.mark.parametrize("literal", ["9007199254740993", "18446744073709551616", "1" + "0" * 30])
async def test_http_refuses_integers_javascript_rounds(
    api: Api, receiver: Receiver, literal: str
) -> None:
    """An integer literal past 2**53-1 is refused with 422, however large: past 2**64 some
    JSON readers give a float instead, which would slip through as a number."""
    user, auth = await api.user()
    await api.client.post("/api/webhooks/config", headers=auth, json={"url": receiver.url})
    _, admin = await api.user("host-app", admin=True)
    event = (
        '{"userId":"' + user.id + '","event":"' + EVENT + '","data":{"resumeId":"r",'
        '"fileName":"a.pdf","parsedAt":"t","success":true,"n":' + literal + "}}"
    )
    headers = {**admin, "Content-Type": "application/json"}
    single = await api.client.post("/api/events", headers=headers, content=event)
    assert single.status_code == 422, single.text
    assert "2**53-1" in single.json()["error"]
    batch = await api.client.post(
        "/api/events/batch", headers=headers, content='{"events":[' + event + "]}"
    )
    assert batch.status_code == 200, batch.text
    (result,) = batch.json()["results"]
    assert result["status"] == 422 and "2**53-1" in result["error"]
    assert await count_deliveries(api) == 0
