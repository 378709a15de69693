"""A webhook receiver that verifies hookline's signatures, using only the standard library.

    WEBHOOK_SECRET=whsec_... python3 examples/receiver.py [PORT]

It listens on 127.0.0.1:PORT (default 3000), checks X-Webhook-Signature (the guide's HMAC-SHA256
of the raw body) and the Standard Webhooks signature, prints each event, and answers 200 when
the signature is valid, 401 otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("WEBHOOK_SECRET", "")
TOLERANCE_S = 300


def guide_signature_ok(body: bytes, signature: str) -> bool:
    """X-Webhook-Signature: hex HMAC-SHA256 of the raw body, keyed with the secret string."""
    expected = hmac.new(SECRET.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def standard_signature_ok(body: bytes, msg_id: str, timestamp: str, signatures: str) -> bool:
    """webhook-signature: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False  # too old or too new: a replay
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, sig.removeprefix("v1,"))
        for sig in signatures.split()
        if sig.startswith("v1,")
    )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = guide_signature_ok(body, self.headers.get("X-Webhook-Signature", "")) and (
            standard_signature_ok(
                body,
                self.headers.get("webhook-id", ""),
                self.headers.get("webhook-timestamp", ""),
                self.headers.get("webhook-signature", ""),
            )
        )
        if ok:
            event = json.loads(body)
            print(f"verified {event['event']} {event['deliveryId']}: {json.dumps(event['data'])}")
        else:
            print("rejected a request with a bad signature")
        sys.stdout.flush()
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b"OK" if ok else b"Invalid signature")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    if not SECRET.startswith("whsec_"):
        sys.exit("receiver: set WEBHOOK_SECRET to the secret hookline gave you (whsec_...)")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_port}/webhooks", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
