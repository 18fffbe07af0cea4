// Sends one trace to a Zipkin v2 endpoint with the real Zipkin JS tracer
// (npm `zipkin` + `zipkin-transport-http`, pinned in package-lock.json),
// then prints {"traceId", "spanIds"} on stdout. Driven by
// tests/tests/zipkin_api.rs; installed by scripts/js-deps.sh.
//
// Usage: node zipkin-send.js http://HOST:PORT/api/v2/spans
//
// The trace: a SERVER span `get /checkout` of `shop-js` (an annotation, a
// tag, its local address), a CLIENT child `select stock` whose remote
// endpoint is `inventory-db` (an error tag), and a local span `render`.

'use strict';

const {
  Tracer, BatchRecorder, ExplicitContext, Annotation, InetAddress, jsonEncoder,
} = require('zipkin');
const { HttpLogger } = require('zipkin-transport-http');

const endpoint = process.argv[2];
if (!endpoint) {
  console.error('usage: node zipkin-send.js ENDPOINT');
  process.exit(2);
}

const logger = new HttpLogger({
  endpoint,
  jsonEncoder: jsonEncoder.JSON_V2,
  httpInterval: 50,
});
const failed = (err) => {
  console.error(`zipkin-send: ${err}`);
  process.exit(1);
};
logger.on('error', failed);
logger.on('success', () => {
  process.stdout.write(`${JSON.stringify(sent)}\n`);
  process.exit(0);
});

const tracer = new Tracer({
  ctxImpl: new ExplicitContext(),
  recorder: new BatchRecorder({ logger }),
  localServiceName: 'shop-js',
  traceId128Bit: true,
});

const sent = { traceId: '', spanIds: [] };

const root = tracer.createRootId();
sent.traceId = root.traceId;
tracer.letId(root, () => {
  sent.spanIds.push(root.spanId);
  tracer.recordServiceName('shop-js');
  tracer.recordRpc('get /checkout');
  tracer.recordAnnotation(new Annotation.ServerRecv());
  tracer.recordAnnotation(new Annotation.LocalAddr({ host: new InetAddress('10.0.0.7'), port: 8080 }));
  tracer.recordBinary('http.path', '/checkout');
  tracer.recordMessage('cart-loaded');

  const child = tracer.createChildId();
  tracer.letId(child, () => {
    sent.spanIds.push(child.spanId);
    tracer.recordServiceName('shop-js');
    tracer.recordRpc('select stock');
    tracer.recordAnnotation(new Annotation.ClientSend());
    tracer.recordAnnotation(new Annotation.ServerAddr({
      serviceName: 'inventory-db', host: new InetAddress('10.0.0.5'), port: 5432,
    }));
    tracer.recordBinary('error', 'stock table locked');
    tracer.recordAnnotation(new Annotation.ClientRecv());
  });

  tracer.local('render', () => {
    sent.spanIds.push(tracer.id.spanId);
  });

  tracer.recordAnnotation(new Annotation.ServerSend());
});

setTimeout(() => failed('no answer from the endpoint within 30 s'), 30000).unref();
setInterval(() => {}, 1000);
