// A receiver that verifies deliveries with the guide's Node.js example, exactly as written
// there (verifyWebhookSignature), after parsing the body as express.json() does.
// Usage: WEBHOOK_SECRET=... node guide_receiver.js  -> prints "listening <port>", then one
// line per request: "<status> <deliveryId>".
const http = require('http');
const crypto = require('crypto');

function verifyWebhookSignature(payload, signature, secret) {
  const hmac = crypto.createHmac('sha256', secret);
  hmac.update(JSON.stringify(payload));
  const expectedSignature = hmac.digest('hex');
  
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expectedSignature)
  );
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let status = 200;
    let payload = null;
    const raw = Buffer.concat(chunks).toString('utf8');
    try {
      payload = JSON.parse(raw);
      const signature = req.headers['x-webhook-signature'];
      const secret = process.env.WEBHOOK_SECRET;
      if (!verifyWebhookSignature(payload, signature, secret)) {
        status = 401;
      }
    } catch (err) {
      status = 401;
    }
    if (status !== 200 && payload !== null) {
      // Not part of the guide: show where re-serialising changed the bytes, for the test log.
      const again = JSON.stringify(payload);
      let at = 0;
      while (at < raw.length && raw[at] === again[at]) at += 1;
      console.error(`body changed at ${at}: sent ...${raw.slice(at, at + 40)}` +
        ` re-serialised ...${again.slice(at, at + 40)}`);
    }
    console.log(`${status} ${payload && payload.deliveryId}`);
    res.statusCode = status;
    res.end(status === 200 ? 'OK' : 'Invalid signature');
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
