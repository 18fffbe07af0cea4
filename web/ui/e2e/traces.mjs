// Generated multi-cluster traces as OTLP/JSON export requests: one trace
// crossing three clusters with an error in the last one and a link to
// another trace, in-cluster traces, and one trace of 10,000 spans.

import { randomBytes } from 'node:crypto';

const hex = (n) => randomBytes(n).toString('hex');
export const newTraceId = () => hex(16);
const str = (key, value) => ({ key, value: { stringValue: value } });
const int = (key, value) => ({ key, value: { intValue: String(value) } });
const KIND = { internal: 1, server: 2, client: 3 };

/** Accumulates spans per (service, cluster) resource. */
export class Batch {
  constructor() {
    this.resources = new Map();
  }
  add(service, cluster, span) {
    const key = `${service}@${cluster}`;
    if (!this.resources.has(key)) this.resources.set(key, { service, cluster, spans: [] });
    this.resources.get(key).spans.push(span);
  }
  toOtlp() {
    return {
      resourceSpans: [...this.resources.values()].map((r) => ({
        resource: { attributes: [str('service.name', r.service), str('k8s.cluster.name', r.cluster), str('k8s.namespace.name', 'shop')] },
        scopeSpans: [{ scope: { name: 'meridian-web-e2e', version: '1' }, spans: r.spans }],
      })),
    };
  }
}

/** A span builder: times in ms relative to `t0Ms`. */
export function span({ traceId, parent, name, kind = 'internal', t0Ms, startMs, endMs, attrs = [], error, events = [], links = [] }) {
  const ns = (ms) => String(BigInt(Math.round((t0Ms + ms) * 1000)) * 1000n);
  return {
    traceId,
    spanId: hex(8),
    ...(parent ? { parentSpanId: parent.spanId } : {}),
    name,
    kind: KIND[kind],
    startTimeUnixNano: ns(startMs),
    endTimeUnixNano: ns(endMs),
    attributes: attrs,
    events: events.map((e) => ({ timeUnixNano: ns(e.atMs), name: e.name, attributes: e.attrs ?? [] })),
    links,
    status: error ? { code: 2, message: error } : { code: 0 },
  };
}

/** The cross-cluster checkout trace (8 spans, 3 clusters, 1 error). */
export function checkoutTrace(batch, t0Ms, linkTo) {
  const traceId = newTraceId();
  const s = (o) => span({ traceId, t0Ms, ...o });
  const root = s({ name: 'GET /checkout', kind: 'server', startMs: 0, endMs: 120, attrs: [str('http.route', '/checkout'), int('http.status_code', 500)], links: linkTo ? [{ traceId: linkTo.traceId, spanId: linkTo.spanId }] : [] });
  const render = s({ parent: root, name: 'render cart', startMs: 5, endMs: 15 });
  const call = s({ parent: root, name: 'POST checkout', kind: 'client', startMs: 20, endMs: 110 });
  const server = s({ parent: call, name: 'POST /checkout', kind: 'server', startMs: 22, endMs: 108, attrs: [str('http.route', '/checkout')] });
  const reserve = s({ parent: server, name: 'reserve stock', startMs: 25, endMs: 40 });
  const pay = s({ parent: server, name: 'POST pay', kind: 'client', startMs: 45, endMs: 100 });
  const payServer = s({
    parent: pay,
    name: 'POST /pay',
    kind: 'server',
    startMs: 47,
    endMs: 98,
    attrs: [str('http.route', '/pay'), str('payment.provider', 'acme')],
    error: 'card declined',
    events: [{ atMs: 90, name: 'exception', attrs: [str('exception.type', 'CardDeclined'), str('exception.message', 'card declined by issuer')] }],
  });
  const db = s({ parent: payServer, name: 'db.query', kind: 'client', startMs: 50, endMs: 60, attrs: [str('db.system', 'postgresql'), str('db.statement', 'SELECT balance FROM accounts')] });
  for (const x of [root, render, call]) batch.add('frontend', 'us-east', x);
  for (const x of [server, reserve, pay]) batch.add('checkout', 'eu-west', x);
  for (const x of [payServer, db]) batch.add('payments', 'ap-south', x);
  return { traceId, rootSpanId: root.spanId, spans: 8 };
}

/** A small in-cluster trace: frontend → catalog in us-east. */
export function browseTrace(batch, t0Ms, durMs) {
  const traceId = newTraceId();
  const s = (o) => span({ traceId, t0Ms, ...o });
  const root = s({ name: 'GET /products', kind: 'server', startMs: 0, endMs: durMs, attrs: [str('http.route', '/products')] });
  const call = s({ parent: root, name: 'GET catalog', kind: 'client', startMs: 1, endMs: durMs - 1 });
  const server = s({ parent: call, name: 'GET /items', kind: 'server', startMs: 2, endMs: durMs - 2 });
  batch.add('frontend', 'us-east', root);
  batch.add('frontend', 'us-east', call);
  batch.add('catalog', 'us-east', server);
  return { traceId, rootSpanId: root.spanId, spans: 3 };
}

/** One trace of `n` spans: batch@us-east with 100 workers of ~100 steps. */
export function bigTrace(batch, t0Ms, n = 10_000) {
  const traceId = newTraceId();
  const s = (o) => span({ traceId, t0Ms, ...o });
  const root = s({ name: 'nightly reindex', startMs: 0, endMs: 5000 });
  batch.add('batch', 'us-east', root);
  let made = 1;
  const workers = [];
  for (let w = 0; w < 100 && made < n; w++, made++) {
    const worker = s({ parent: root, name: `worker ${w}`, startMs: w * 10, endMs: 4000 + w * 10 });
    batch.add('batch', 'us-east', worker);
    workers.push(worker);
  }
  let lastStep = 0;
  for (let i = 0; made < n; i++, made++) {
    const w = workers[i % workers.length];
    const step = Math.floor(i / workers.length);
    if (w === workers[workers.length - 1]) lastStep = step;
    batch.add('batch', 'us-east', s({ parent: w, name: `step ${step}`, startMs: (i % workers.length) * 10 + step * 39, endMs: (i % workers.length) * 10 + step * 39 + 30 }));
  }
  // The last row of the waterfall: the last worker's last step.
  return { traceId, rootSpanId: root.spanId, spans: n, lastStep: `step ${lastStep}` };
}

export async function post(otlpHttp, batch) {
  const res = await fetch(`${otlpHttp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(batch.toOtlp()) });
  if (!res.ok) throw new Error(`OTLP export: ${res.status} ${await res.text()}`);
}

/** `n` one-span server traces of inventory@`cluster` ("GET /stock"), every
 * fourth failing, durations 10–200 ms, ending just before `nowMs`: what
 * the agent's RED tap counts. */
export function stockTraffic(batch, nowMs, cluster, n = 20) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const traceId = newTraceId();
    const dur = 10 + ((i * 47) % 190);
    const error = i % 4 === 3 ? 'out of stock' : undefined;
    batch.add('inventory', cluster, span({ traceId, name: 'GET /stock', kind: 'server', t0Ms: nowMs - 1000, startMs: 0, endMs: dur, attrs: [str('http.route', '/stock')], error }));
    ids.push(traceId);
  }
  return { ids, calls: n, errors: Math.floor(n / 4) };
}
