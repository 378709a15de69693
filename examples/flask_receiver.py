"""A Flask webhook receiver using hookline's helper.

    WEBHOOK_SECRET=whsec_... python examples/flask_receiver.py [PORT]
    WEBHOOK_SECRET=whsec_... flask --app examples/flask_receiver run --port 3000

It listens on 127.0.0.1:PORT (default 3000) and answers POST /webhooks: 200 for a genuine,
fresh delivery, 401 with a JSON reason otherwise. While a secret is being replaced, hold both:
``WEBHOOK_SECRET="whsec_new whsec_old"``.
"""

import os
import sys

from flask import Flask

from hookline.receiver import WebhookEvent
from hookline.receiver.flask import verify_webhook

app = Flask(__name__)


@app.post("/webhooks")
@verify_webhook(os.environ.get("WEBHOOK_SECRET", ""))
def webhooks(event: WebhookEvent) -> dict[str, str]:
    print(f"verified {event.event} {event.delivery_id}: {event.data}", flush=True)
    if event.replaced_secret:
        print("  with a replaced secret: set WEBHOOK_SECRET to the new one", flush=True)
    return {"status": "ok"}


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    app.run(host="127.0.0.1", port=port)
