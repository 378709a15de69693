"""A webhook receiver that verifies hookline's signatures, using only the standard library.

    WEBHOOK_SECRET=whsec_... python3 examples/receiver.py [PORT]

It listens on 127.0.0.1:PORT (default 3000), prints each verified event and answers 200, or
401 when the signatures do not verify. A delivery is genuine when its Standard Webhooks
signature (``webhook-signature``, which covers a timestamp) verifies with a secret this
receiver holds; when that secret is hookline's newest, ``X-Webhook-Signature`` (the guide's
HMAC-SHA256 of the raw body, signed with the newest secret only) must verify too.

After "Regenerate secret" hookline keeps adding a signature made with the replaced secret to
``webhook-signature`` until ``previousSecretExpiresAt``, so a receiver still holding the old
secret keeps working. To switch without a gap, hold both for a while:
``WEBHOOK_SECRET="whsec_new whsec_old"`` (space- or comma-separated).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRETS = re.split(r"[\s,]+", os.environ.get("WEBHOOK_SECRET", "").strip())
TOLERANCE_S = 300


def guide_signature(secret: str, body: bytes) -> str:
    """X-Webhook-Signature: hex HMAC-SHA256 of the raw body, keyed with the secret string."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """One webhook-signature entry without its ``v1,``: base64 HMAC of "{id}.{timestamp}.{body}"."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(body: bytes, headers: Message) -> int | None:
    """Which webhook-signature entry a held secret verifies (0: the newest secret), or None.

    hookline lists one ``v1,`` signature per secret it still uses, newest first. Any of them
    will do; but when ours is the newest, X-Webhook-Signature, signed with the newest secret
    alone, must verify as well.
    """
    timestamp = headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return None  # too old or too new: a replay
    entries = headers.get("webhook-signature", "").split()
    offered = [entry.removeprefix("v1,") for entry in entries if entry.startswith("v1,")]
    for position, signature in enumerate(offered):
        for secret in SECRETS:
            expected = standard_signature(secret, headers.get("webhook-id", ""), timestamp, body)
            if not hmac.compare_digest(expected.encode(), signature.encode()):
                continue
            guide = headers.get("X-Webhook-Signature", "")
            computed = guide_signature(secret, body).encode()
            if position == 0 and not hmac.compare_digest(computed, guide.encode()):
                return None
            return position
    return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        position = verify(body, self.headers)
        if position is not None:
            event = json.loads(body)
            print(f"verified {event['event']} {event['deliveryId']}: {json.dumps(event['data'])}")
            if position > 0:
                print("  with a replaced secret, which hookline uses only until its grace period")
                print("  ends (previousSecretExpiresAt): set WEBHOOK_SECRET to the new one")
        else:
            print("rejected a request with a bad signature")
        sys.stdout.flush()
        self.send_response(401 if position is None else 200)
        self.end_headers()
        self.wfile.write(b"Invalid signature" if position is None else b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


def usable(secret: str) -> bool:
    """A secret as hookline hands it out: whsec_ and base64."""
    try:
        return secret.startswith("whsec_") and bool(base64.b64decode(secret[6:], validate=True))
    except binascii.Error:
        return False


def main() -> None:
    if not all(map(usable, SECRETS)):
        sys.exit(
            "receiver: set WEBHOOK_SECRET to the secret hookline gave you (whsec_...),"
            " or to several separated by spaces or commas"
        )
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_port}/webhooks", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
