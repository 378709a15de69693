"""A FastAPI webhook receiver using hookline's helper.

    WEBHOOK_SECRET=whsec_... python examples/fastapi_receiver.py [PORT]
    WEBHOOK_SECRET=whsec_... uvicorn --app-dir examples fastapi_receiver:app --port 3000

It listens on 127.0.0.1:PORT (default 3000) and answers POST /webhooks: 200 for a genuine,
fresh delivery, 401 with a JSON reason otherwise. While a secret is being replaced, hold both:
``WEBHOOK_SECRET="whsec_new whsec_old"``.
"""

import os
import sys
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI

from hookline.receiver import WebhookEvent
from hookline.receiver.fastapi import verified_webhook

app = FastAPI()
Verified = Annotated[WebhookEvent, Depends(verified_webhook(os.environ.get("WEBHOOK_SECRET", "")))]


@app.post("/webhooks")
async def webhooks(event: Verified) -> dict[str, str]:
    print(f"verified {event.event} {event.delivery_id}: {event.data}", flush=True)
    if event.replaced_secret:
        print("  with a replaced secret: set WEBHOOK_SECRET to the new one", flush=True)
    return {"status": "ok"}


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    uvicorn.run(app, host="127.0.0.1", port=port)
