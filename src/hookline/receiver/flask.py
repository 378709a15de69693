"""A Flask decorator that verifies a delivery before the view runs.

    from hookline.receiver import WebhookEvent
    from hookline.receiver.flask import verify_webhook

    @app.post("/webhooks")
    @verify_webhook(os.environ["WEBHOOK_SECRET"])
    def webhooks(event: WebhookEvent) -> str: ...

The view gets the verified event as its first argument, before any URL variables. A request
that does not verify gets 401 with ``{"detail": {"reason": "bad_signature", "message": "..."}}``
and the view never runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from hookline.receiver import DEFAULT_TOLERANCE_S, Verifier, WebhookEvent, WebhookVerificationError

__all__ = ["verify_webhook"]

P = ParamSpec("P")

View = Callable[Concatenate[WebhookEvent, P], ResponseReturnValue]


def verify_webhook(
    secrets: str | Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    guide_only: bool = False,
) -> Callable[[View[P]], Callable[P, ResponseReturnValue]]:
    """A decorator for a view: verify the raw body, then call the view with the event first.

    ``secrets`` are checked now (ValueError when unusable), not at the first request.
    """
    verifier = Verifier(secrets, tolerance_s=tolerance_s, guide_only=guide_only)

    def decorate(view: View[P]) -> Callable[P, ResponseReturnValue]:
        @functools.wraps(view)
        def verified(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            body = request.get_data(cache=True)  # cached: the view can still read it
            try:
                event = verifier.verify(body, request.headers)
            except WebhookVerificationError as exc:
                # The same body as the FastAPI dependency's, FastAPI's error shape.
                return jsonify(detail={"reason": str(exc.reason), "message": str(exc)}), 401
            return view(event, *args, **kwargs)

        return verified

    return decorate
