"""hookline.receiver: verifying deliveries signed by hookline and by standardwebhooks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import pytest
from standardwebhooks import Webhook

from hookline.ids import new_secret
from hookline.payload import build_body, build_headers, guide_signature
from hookline.receiver import (
    Headers,
    Reason,
    Verifier,
    WebhookEvent,
    WebhookVerificationError,
    parse_secrets,
    verify,
)

NEW = new_secret()
OLD = new_secret()
MOMENT = datetime(2024, 11, 14, 10, 5, 0, 123000, tzinfo=UTC)
DATA = {"resumeId": "clx1", "fileName": "Zoë ✓.pdf", "score": 85.5, "nested": {"2": [1, None]}}
BODY = build_body("resume.parsed", "d-1", MOMENT, "clx-user", DATA)


def signed(secrets: list[str], *, body: bytes = BODY, age_s: int = 0) -> dict[str, str]:
    """hookline's headers for ``body``, as the worker builds them ``age_s`` seconds ago."""
    return build_headers(
        body=body,
        event="resume.parsed",
        delivery_id="d-1",
        secrets=secrets,
        timestamp_s=int(time.time()) - age_s,
        user_agent="test",
    )


def refused(
    reason: Reason, body: bytes, headers: dict[str, str], secrets: str | list[str], **options: Any
) -> str:
    """The message of the WebhookVerificationError that verify raises, after checking its reason."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body, headers, secrets, **options)
    assert caught.value.reason is reason, caught.value
    return str(caught.value)


def test_a_genuine_delivery_gives_the_typed_event() -> None:
    event = verify(BODY, signed([NEW]), NEW)
    assert event == WebhookEvent(
        event="resume.parsed",
        delivery_id="d-1",
        timestamp=MOMENT,
        user_id="clx-user",
        data=json.loads(json.dumps(DATA)),
        replaced_secret=False,
    )
    assert event.timestamp.tzinfo is not None


@pytest.mark.parametrize("form", ["lower", "upper", "message"])
def test_header_names_are_case_insensitive(form: str) -> None:
    headers = signed([NEW])
    message = Message()  # what http.server hands a handler
    for name, value in headers.items():
        message[name] = value
    forms: dict[str, Headers] = {
        "lower": {name.lower(): value for name, value in headers.items()},
        "upper": {name.upper(): value for name, value in headers.items()},
        "message": message,
    }
    assert verify(BODY, forms[form], NEW).delivery_id == "d-1"


@pytest.mark.parametrize(
    ("held", "replaced"),
    [([NEW], False), ([OLD], True), ([NEW, OLD], False), ([OLD, NEW], False)],
)
def test_during_a_rotation_any_held_secret_verifies(held: list[str], replaced: bool) -> None:
    """hookline signs webhook-signature with [new, old]; X-Webhook-Signature with new only."""
    event = verify(BODY, signed([NEW, OLD]), held)
    assert event.replaced_secret is replaced


def test_secrets_may_come_as_one_string_separated_by_spaces_or_commas() -> None:
    assert parse_secrets(f" {NEW}, {OLD}\n") == [NEW, OLD]
    assert parse_secrets(f"{NEW},{OLD}") == [NEW, OLD]
    assert verify(BODY, signed([NEW, OLD]), f"{OLD} {NEW}").replaced_secret is False


def test_the_guide_header_is_checked_when_the_newest_secret_is_held() -> None:
    headers = signed([NEW, OLD])
    headers["X-Webhook-Signature"] = "0" * 64
    for held in ([NEW], [OLD, NEW]):
        message = refused(Reason.BAD_SIGNATURE, BODY, headers, held)
        assert "X-Webhook-Signature" in message
    # A receiver holding only the replaced secret cannot check it, and relies on webhook-signature.
    assert verify(BODY, headers, [OLD]).replaced_secret is True


def test_a_tampered_body_or_a_wrong_secret_is_refused() -> None:
    headers = signed([NEW])
    refused(Reason.BAD_SIGNATURE, BODY.replace(b"clx1", b"clx2"), headers, NEW)
    refused(Reason.BAD_SIGNATURE, BODY + b" ", headers, NEW)
    refused(Reason.BAD_SIGNATURE, BODY, headers, new_secret())
    # Another delivery's signatures do not carry over.
    other = signed([NEW], body=BODY.replace(b"clx1", b"clx2"))
    refused(
        Reason.BAD_SIGNATURE,
        BODY,
        {**headers, "webhook-signature": other["webhook-signature"]},
        NEW,
    )
    refused(Reason.BAD_SIGNATURE, BODY, {**headers, "webhook-id": "d-2"}, NEW)


@pytest.mark.parametrize("age_s", [301, -301, 3600])
def test_a_stale_timestamp_is_refused(age_s: int) -> None:
    message = refused(Reason.STALE_TIMESTAMP, BODY, signed([NEW], age_s=age_s), NEW)
    assert "tolerance is 300 s" in message


def test_the_tolerance_is_five_minutes_and_adjustable() -> None:
    assert verify(BODY, signed([NEW], age_s=290), NEW).event == "resume.parsed"
    assert verify(BODY, signed([NEW], age_s=-290), NEW).event == "resume.parsed"
    refused(Reason.STALE_TIMESTAMP, BODY, signed([NEW], age_s=60), NEW, tolerance_s=30)
    assert verify(BODY, signed([NEW], age_s=900), NEW, tolerance_s=1000).delivery_id == "d-1"


@pytest.mark.parametrize("value", ["abc", "1.7e9", "-5", "\u0661" * 10])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(value: str) -> None:
    refused(Reason.STALE_TIMESTAMP, BODY, {**signed([NEW]), "webhook-timestamp": value}, NEW)


@pytest.mark.parametrize(
    "name", ["webhook-id", "webhook-timestamp", "webhook-signature", "X-Webhook-Signature"]
)
def test_a_missing_header_is_named(name: str) -> None:
    headers = signed([NEW])
    del headers[name]
    assert name in refused(Reason.MISSING_HEADER, BODY, headers, NEW)
    assert name in refused(Reason.MISSING_HEADER, BODY, {**headers, name: " "}, NEW)


def test_odd_signature_headers_are_refused_not_raised() -> None:
    headers = signed([NEW])
    for value in ["v1,ü", "v2,abc", "v1", "ü" * 44, "v1," + "=" * 44]:
        refused(Reason.BAD_SIGNATURE, BODY, {**headers, "webhook-signature": value}, NEW)
    refused(Reason.BAD_SIGNATURE, BODY, {**headers, "X-Webhook-Signature": "é" * 64}, NEW)


def test_a_signed_body_that_is_no_payload_is_refused() -> None:
    for body in [b"not json", b"[]", b'{"event":"x"}', b"\xff", b'{"event":1,"deliveryId":"d",'
                 b'"timestamp":"2024-11-14T10:05:00.000Z","userId":"u","data":{}}']:  # fmt: skip
        refused(Reason.BAD_BODY, body, signed([NEW], body=body), NEW)


def test_guide_only_checks_x_webhook_signature_alone() -> None:
    headers = {"X-Webhook-Signature": guide_signature(NEW, BODY)}
    event = verify(BODY, headers, NEW, guide_only=True)
    assert (event.event, event.replaced_secret) == ("resume.parsed", False)
    assert verify(BODY, headers, [OLD, NEW], guide_only=True).delivery_id == "d-1"
    # Any string is a secret to the guide's scheme.
    assert verify(BODY, {"X-Webhook-Signature": guide_signature("s3cret", BODY)}, "s3cret",
                  guide_only=True).user_id == "clx-user"  # fmt: skip
    refused(Reason.BAD_SIGNATURE, BODY + b" ", headers, NEW, guide_only=True)
    refused(Reason.BAD_SIGNATURE, BODY, headers, OLD, guide_only=True)
    assert "X-Webhook-Signature" in refused(Reason.MISSING_HEADER, BODY, {}, NEW, guide_only=True)


def test_guide_only_cannot_tell_a_replay() -> None:
    """Its weakness, documented: an hour-old request verifies as well as a fresh one."""
    headers = signed([NEW], age_s=3600)
    assert verify(BODY, headers, NEW, guide_only=True).delivery_id == "d-1"
    # After a rotation the replaced secret no longer verifies the guide's header at all.
    refused(Reason.BAD_SIGNATURE, BODY, signed([NEW, OLD]), OLD, guide_only=True)


@pytest.mark.parametrize("secrets", ["", " , ", [], ["whsec_not base64!"], ["whsec_"], [NEW, "x"]])
def test_unusable_secrets_fail_at_construction(secrets: str | list[str]) -> None:
    with pytest.raises(ValueError, match="secret"):
        Verifier(secrets)


def test_a_message_never_repeats_a_secret() -> None:
    with pytest.raises(ValueError) as caught:
        Verifier([NEW, "whsec_leaked-but-not-base64!"])
    assert "leaked" not in str(caught.value) and NEW not in str(caught.value)


# --- cross-checks with the standardwebhooks package ---------------------------------------------


def standardwebhooks_headers(secret: str, body: bytes, at: datetime) -> dict[str, str]:
    """Headers as any Standard Webhooks sender makes them, plus hookline's guide header."""
    signature = Webhook(secret).sign("msg_1", at, body.decode())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "X-Webhook-Signature": guide_signature(secret, body),
    }


def test_standardwebhooks_signatures_verify() -> None:
    headers = standardwebhooks_headers(NEW, BODY, datetime.now(UTC))
    assert verify(BODY, headers, NEW).data["fileName"] == "Zoë ✓.pdf"
    refused(Reason.BAD_SIGNATURE, BODY, headers, OLD)
    refused(Reason.BAD_SIGNATURE, BODY.replace(b"85.5", b"95.5"), headers, NEW)


def test_standardwebhooks_agrees_on_what_is_stale() -> None:
    at = datetime.fromtimestamp(time.time() - 400, UTC)
    headers = standardwebhooks_headers(NEW, BODY, at)
    refused(Reason.STALE_TIMESTAMP, BODY, headers, NEW)
    with pytest.raises(Exception, match="too old"):
        Webhook(NEW).verify(BODY, headers)


def test_standardwebhooks_accepts_what_this_verifier_accepts_during_a_rotation() -> None:
    headers = signed([NEW, OLD])
    for secret in (NEW, OLD):
        verify(BODY, headers, secret)
        assert Webhook(secret).verify(BODY, headers)["deliveryId"] == "d-1"
