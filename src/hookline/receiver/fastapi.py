"""A FastAPI dependency that verifies a delivery before the route runs.

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from hookline.receiver import WebhookEvent
    from hookline.receiver.fastapi import verified_webhook

    Verified = Annotated[WebhookEvent, Depends(verified_webhook(os.environ["WEBHOOK_SECRET"]))]

    @app.post("/webhooks")
    async def webhooks(event: Verified) -> dict[str, str]: ...

A request that does not verify gets 401 with
``{"detail": {"reason": "bad_signature", "message": "..."}}`` and the route never runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import HTTPException, Request

from hookline.receiver import DEFAULT_TOLERANCE_S, Verifier, WebhookEvent, WebhookVerificationError

__all__ = ["verified_webhook"]


def verified_webhook(
    secrets: str | Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    guide_only: bool = False,
) -> Callable[[Request], Awaitable[WebhookEvent]]:
    """A dependency that reads the raw body, verifies it and yields the event, or answers 401.

    ``secrets`` are checked now (ValueError when unusable), not at the first request.
    """
    verifier = Verifier(secrets, tolerance_s=tolerance_s, guide_only=guide_only)

    async def verified(request: Request) -> WebhookEvent:
        body = await request.body()  # cached: the route can still read it
        try:
            return verifier.verify(body, request.headers)
        except WebhookVerificationError as exc:
            detail = {"reason": str(exc.reason), "message": str(exc)}
            raise HTTPException(status_code=401, detail=detail) from exc

    return verified
