// End-to-end: a real gateway, generated multi-cluster traces, and the UI
// in real headless Chromium (Debian's, driven by playwright-core; never a
// downloaded browser). Screenshots go to $MERIDIAN_WEB_E2E_OUT.
//
// RED metrics come only from agents (their tap counts spans before
// sampling and forwards 10 s windows), so a real meridian-agent for cluster
// eu-central, with a certificate from the gateway's dev CA, takes spans too.
//
//   MERIDIAN_GATEWAY_BIN=<target>/debug/meridian-gateway \
//   MERIDIAN_AGENT_BIN=<target>/debug/meridian-agent node --test e2e/

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startAgent } from './agent.mjs';
import { startGateway, waitFor } from './gateway.mjs';
import { Batch, bigTrace, browseTrace, checkoutTrace, post, stockTraffic } from './traces.mjs';

const CHROMIUM = process.env.MERIDIAN_CHROMIUM ?? '/usr/bin/chromium';
const GATEWAY = process.env.MERIDIAN_GATEWAY_BIN;
const AGENT = process.env.MERIDIAN_AGENT_BIN;
const AGENT_CLUSTER = 'eu-central';
const STOCK_RULE = 'inventory errors';
const OUT = resolve(process.env.MERIDIAN_WEB_E2E_OUT ?? 'e2e-out');
const TOKEN = 'e2e-admin-secret';
/** APIs an older gateway lacks: a 404 from them is the UI's "not
 * available" case. RED, alerts and clusters must answer. */
const PENDING_API = /\/api\/(dependencies|v1\/(graph|traces\/[0-9a-f]+\/(summary|links)))(\?|$)/;

let gw;
let agent;
/** Settles when the agent's RED window for the stock traffic reached the gateway. */
let redReady;
let browser;
let page;
let data;
const consoleErrors = [];
const badResponses = [];

async function shot(name) {
  await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: false });
}

before(async () => {
  assert.ok(GATEWAY, 'set MERIDIAN_GATEWAY_BIN to the meridian-gateway binary');
  assert.ok(AGENT, 'set MERIDIAN_AGENT_BIN to the meridian-agent binary');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(OUT, { recursive: true });
  // One trusted plain OTLP sender plays several clusters.
  gw = await startGateway(GATEWAY, ['--admin-token', TOKEN, '--otlp-trust-cluster-attribute']);
  // First the agent's traffic: its RED window closes within 10 s and is
  // awaited only by the dashboards test, while the other tests run.
  agent = await startAgent({ agentExe: AGENT, gatewayExe: GATEWAY, gateway: gw, cluster: AGENT_CLUSTER });
  const stockBatch = new Batch();
  const stock = stockTraffic(stockBatch, Date.now(), AGENT_CLUSTER);
  await post(agent.otlpHttp, stockBatch);
  redReady = waitFor(
    'the agent\'s RED window at the gateway',
    async () => {
      const to = Date.now();
      const r = await (await fetch(`${gw.http}/api/v1/metrics/red?service=inventory&from=${to - 10 * 60e3}&to=${to}&step=10000`)).json();
      return r.series?.[0]?.total?.calls === stock.calls && r;
    },
    45_000,
  ).catch((e) => e);
  const rule = await fetch(`${gw.http}/api/v1/admin/alert-rules/${encodeURIComponent(STOCK_RULE)}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ expr: `error_ratio{cluster="${AGENT_CLUSTER}",service="inventory"}[1m] > 0.05`, for_secs: 0 }),
  });
  assert.equal(rule.status, 200, await rule.text());
  const now = Date.now();
  const batch = new Batch();
  const browse = [];
  for (let i = 0; i < 15; i++) browse.push(browseTrace(batch, now - 40 * 60e3 + i * 60e3, 20 + ((i * 37) % 200)));
  const linked = browse[0];
  const checkout = checkoutTrace(batch, now - 5 * 60e3, { traceId: linked.traceId, spanId: linked.rootSpanId });
  await post(gw.otlpHttp, batch);
  const bigBatch = new Batch();
  const big = bigTrace(bigBatch, now - 10 * 60e3);
  await post(gw.otlpHttp, bigBatch);
  data = { checkout, browse, big, stock };
  await waitFor('the traces to be searchable', async () => {
    const r = await (await fetch(`${gw.http}/api/traces/${big.traceId}`)).json();
    const c = await (await fetch(`${gw.http}/api/traces/${checkout.traceId}`)).json();
    const s = await (await fetch(`${gw.http}/api/traces?service=inventory&limit=100`)).json();
    return r.data?.[0]?.spans.length === big.spans && c.data?.[0]?.spans.length === checkout.spans && s.data?.length === stock.calls;
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => {
    // Failed requests are checked through `badResponses` below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() < 400) return;
    const url = new URL(r.url());
    // Anonymous callers are refused (401) by the admin API: the cluster
    // pickers try it, the Alerts page asks for a sign-in.
    const expected = (r.status() === 404 && PENDING_API.test(url.pathname + url.search)) || (r.status() === 401 && url.pathname.startsWith('/api/v1/admin/'));
    if (!expected) badResponses.push(`${r.status()} ${url.pathname}${url.search}`);
  });
});

after(async () => {
  await browser?.close();
  await agent?.stop();
  await gw?.stop();
});

describe('the web UI against a real gateway', () => {
  test('serving: SPA routes, cached assets, API paths untouched', async () => {
    const index = await fetch(`${gw.http}/trace/0123abcd`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    // Security headers: scripts only from the gateway, never framed. The
    // last test (no console errors) shows the UI runs under this policy.
    const csp = index.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(index.headers.get('x-frame-options'), 'DENY');
    assert.equal(index.headers.get('referrer-policy'), 'no-referrer');
    const html = await index.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, `a hashed script in ${html}`);
    const js = await fetch(`${gw.http}${script}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /javascript/);
    assert.match(js.headers.get('cache-control'), /immutable/);
    for (const path of ['/api/nope', '/api/v1/nope', '/assets/missing-123.js', '/favicon.ico']) {
      assert.equal((await fetch(`${gw.http}${path}`)).status, 404, path);
    }
    assert.equal((await fetch(`${gw.http}/api/services`)).headers.get('content-type'), 'application/json');
    assert.equal(await (await fetch(`${gw.http}/healthz`)).text(), 'ok');
  });

  test('search: form, URL, scatter plot and result list', async () => {
    await page.goto(`${gw.http}/`);
    // An open gateway (loopback, no --auth): anonymous, every cluster.
    await page.getByTestId('identity').waitFor();
    assert.equal(await page.getByTestId('principal-name').textContent(), 'anonymous');
    assert.equal(await page.getByTestId('principal-scope').textContent(), 'every cluster');
    await page.getByLabel('Service').selectOption('frontend');
    await page.getByRole('button', { name: 'Find traces' }).click();
    await page.waitForURL(/\/search\?.*service=frontend/);
    await page.getByTestId('result-count').waitFor();
    assert.equal(await page.getByTestId('result-count').textContent(), '16 traces');
    assert.equal(await page.locator('[data-testid=scatter] canvas').count() > 0, true);
    const row = page.getByTestId('result').filter({ hasText: 'GET /checkout' });
    const text = await row.textContent();
    for (const s of ['frontend', '8 spans', '1 error', 'us-east', 'eu-west', 'ap-south']) assert.ok(text.includes(s), `${s} in ${text}`);
    // The cluster filter (the service's cluster) goes into the URL: frontend
    // runs in us-east only, so ap-south finds nothing (the empty state).
    await page.getByLabel('Cluster').fill('ap-south');
    await page.getByRole('button', { name: 'Find traces' }).click();
    await page.waitForURL(/cluster=ap-south/);
    await page.getByText('No traces match').waitFor();
    // Back restores the previous query.
    await page.goBack();
    await waitFor('the unfiltered results', async () => (await page.getByTestId('result-count').textContent()) === '16 traces', 10_000);
    assert.equal(await page.getByLabel('Cluster').inputValue(), '');
    await shot('01-search');
  });

  test('trace view: waterfall, clusters, collapse, span detail, find, keyboard', async () => {
    await page.getByTestId('result').filter({ hasText: 'GET /checkout' }).click();
    await page.waitForURL(`**/trace/${data.checkout.traceId}`);
    await page.getByTestId('span-row').first().waitFor();
    assert.equal(await page.getByTestId('span-count').textContent(), '8 spans');
    const rows = page.getByTestId('span-row');
    assert.equal(await rows.count(), 8);
    // Two places where the trace crosses clusters.
    assert.deepEqual(await page.getByTestId('cross-marker').allTextContents(), ['⇄ eu-west', '⇄ ap-south']);
    assert.equal(await page.locator('.wf-row.error').count(), 1);
    assert.ok((await page.locator('.wf-row.critical').count()) >= 3, 'critical path marked');
    // Collapse the root, then expand it again.
    await rows.first().getByTestId('toggle').click();
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().textContent(), /\+7/);
    await rows.first().getByTestId('toggle').click();
    assert.equal(await rows.count(), 8);
    // Open the failing span.
    await rows.filter({ hasText: 'POST /pay' }).click();
    const detail = page.getByTestId('span-detail');
    await detail.waitFor();
    const d = await detail.textContent();
    for (const s of ['payments', 'ap-south', 'called from eu-west', 'payment.provider', 'acme', 'exception', 'card declined by issuer', 'k8s.cluster.name']) assert.ok(d.includes(s), `${s} in the span detail`);
    await shot('02-trace');
    // The root's link to another trace is listed and leads there.
    await rows.first().click();
    assert.ok((await detail.textContent()).includes(`trace ${data.browse[0].traceId.slice(0, 12)}`));
    // Find in trace.
    await page.getByLabel('Find in trace').fill('db.query');
    await page.getByLabel('Find in trace').press('Enter');
    assert.equal(await page.getByTestId('find-hits').textContent(), '1 of 1');
    assert.equal(await page.locator('.wf-row.selected').textContent().then((t) => t.includes('db.query')), true);
    await page.getByLabel('Find in trace').fill('');
    // Keyboard: focus the tree, move down from the root, open with Enter.
    await page.locator('.wf-row').first().click();
    await page.locator('.waterfall').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    assert.match(await page.locator('.wf-row.selected').textContent(), /POST checkout/);
    await page.keyboard.press('ArrowLeft'); // collapses "POST checkout"
    assert.equal(await rows.count(), 3);
    await page.keyboard.press('ArrowRight'); // expands it
    assert.equal(await rows.count(), 8);
    await page.keyboard.press('ArrowRight'); // to its first child
    await page.keyboard.press('Enter');
    assert.match(await page.getByTestId('span-detail').locator('h2').textContent(), /checkout\s*POST \/checkout/);
    // JSON download of the trace as served.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
    assert.equal(download.suggestedFilename(), `trace-${data.checkout.traceId}.json`);
    // The completeness panel: the gateway's stitched summary names the
    // three clusters that reported spans.
    const completeness = page.getByTestId('completeness');
    await completeness.getByText('Reported by').waitFor();
    const facts = await completeness.textContent();
    for (const c of ['us-east', 'eu-west', 'ap-south']) assert.ok(facts.includes(c), `${c} in ${facts}`);
  });

  test('trace view: raw and corrected timestamps', async () => {
    await page.getByRole('button', { name: 'Raw', exact: true }).click();
    await page.waitForURL(/raw=true/);
    await page.getByTestId('skew-notice').waitFor();
    assert.match(await page.getByTestId('skew-notice').textContent(), /raw/);
    await page.getByTestId('span-row').first().waitFor();
    assert.equal(await page.getByTestId('span-row').count(), 8);
    await shot('03-trace-raw');
    await page.getByRole('button', { name: 'Corrected', exact: true }).click();
    await page.waitForURL((u) => !u.search.includes('raw'));
    await page.getByTestId('span-row').first().waitFor();
  });

  test('trace view: 10,000 spans are virtualised', async () => {
    // Opened by id from the top bar.
    await page.getByLabel('Open a trace by id').fill(data.big.traceId);
    await page.getByLabel('Open a trace by id').press('Enter');
    await page.waitForURL(`**/trace/${data.big.traceId}`);
    await page.getByTestId('span-row').first().waitFor();
    assert.equal(await page.getByTestId('span-count').textContent(), '10000 spans');
    const inDom = await page.getByTestId('span-row').count();
    assert.ok(inDom > 10 && inDom < 200, `${inDom} rows in the DOM`);
    await page.getByTestId('waterfall-scroll').evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.getByTestId('span-row').filter({ hasText: data.big.lastStep }).last().waitFor();
    assert.ok((await page.getByTestId('span-row').count()) < 200);
    // Zoom with the minimap: drag across its first fifth. The panels above
    // the waterfall load on their own; measure once they did, or the
    // minimap moves under the mouse.
    await page.getByTestId('completeness').getByText('Reported by').waitFor();
    await page.getByTestId('links').getByText('Traces linking here').waitFor({ state: 'attached' });
    const box = await page.getByTestId('minimap').boundingBox();
    await page.mouse.move(box.x + 5, box.y + 20);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 5, box.y + 20, { steps: 5 });
    await page.mouse.up();
    await page.getByRole('button', { name: 'Reset zoom' }).waitFor();
    await page.getByTestId('waterfall-scroll').evaluate((el) => (el.scrollTop = 0));
    await page.getByTestId('span-row').filter({ hasText: 'worker 0' }).waitFor();
    await shot('04-trace-10k-zoomed');
  });

  test('search: the TraceQL box finds the matching traces and shows why a query is refused', async () => {
    await page.goto(`${gw.http}/search`);
    await page.getByRole('button', { name: 'TraceQL', exact: true }).click();
    const box = page.getByRole('textbox', { name: 'TraceQL' });
    assert.equal(await box.getAttribute('placeholder'), '{ resource.service.name = "checkout" && status = error }');
    const ids = async () => (await page.getByTestId('result').locator('.trace-id').allTextContents()).sort();
    // The error of the checkout trace happens in payments; the inventory
    // traffic has errors too, the browse traces none.
    await box.fill('{ resource.service.name = "payments" && status = error }');
    await box.press('Enter');
    await page.waitForURL(/\/search\?q=/);
    await waitFor('the TraceQL results', async () => (await page.getByTestId('result-count').textContent()) === '1 trace', 10_000);
    assert.deepEqual(await ids(), [data.checkout.traceId.slice(0, 12)]);
    assert.match(await page.getByTestId('result').textContent(), /GET \/checkout/);
    await shot('01b-search-traceql');
    // Many traces: the 15 browse traces reach catalog, the checkout does not.
    await box.fill('{ resource.service.name = "catalog" }');
    await box.press('Enter');
    await waitFor('the catalog results', async () => (await page.getByTestId('result-count').textContent()) === '15 traces', 10_000);
    assert.deepEqual(await ids(), data.browse.map((b) => b.traceId.slice(0, 12)).sort());
    // Structural, across clusters: an error downstream of us-east in ap-south.
    await box.fill('{ cluster = "us-east" } >> { cluster = "ap-south" && status = error }');
    await page.getByRole('button', { name: 'Find traces' }).click();
    await page.waitForURL((u) => u.searchParams.get('q')?.includes('>>'));
    await waitFor('the structural results', async () => (await page.getByTestId('result-count').textContent()) === '1 trace', 10_000);
    assert.deepEqual(await ids(), [data.checkout.traceId.slice(0, 12)]);
    // Unsupported syntax: the gateway's reason, inline.
    await box.fill('{ } | count() > 1');
    await box.press('Enter');
    const refused = page.getByTestId('query-refused');
    await refused.waitFor();
    assert.match(await refused.textContent(), /Query refused.*\| \(pipeline\) is not supported by Meridian/);
    assert.equal(await page.getByTestId('result').count(), 0);
    await shot('01c-search-traceql-refused');
    // That 400 was the API's answer, and the only one.
    const at = badResponses.findIndex((r) => r.startsWith('400 /api/traces?q='));
    assert.ok(at >= 0, `the API answered 400: ${badResponses}`);
    badResponses.splice(at, 1);
    // Back to the form: its fields are there again.
    await page.getByRole('button', { name: 'Filters', exact: true }).click();
    await page.getByLabel('Service').waitFor();
    assert.equal(await page.getByRole('textbox', { name: 'TraceQL' }).count(), 0);
  });

  test('service map: services per cluster, cross-cluster edges, click to search', async () => {
    await page.goto(`${gw.http}/map`);
    await page.getByTestId('service-map').waitFor();
    const nodes = await page.getByTestId('map-node').evaluateAll((ns) => ns.map((n) => n.querySelector('.svc').textContent + n.querySelector('.at').textContent));
    for (const n of ['frontend@us-east', 'checkout@eu-west', 'payments@ap-south', 'catalog@us-east']) assert.ok(nodes.includes(n), `${n} in ${nodes}`);
    assert.equal(await page.getByTestId('map-cluster').count(), 3);
    assert.ok((await page.locator('.map-edge.cross').count()) >= 2, 'cross-cluster edges');
    // Drawn from the gateway's stitched graph, not from a sample of traces.
    assert.equal(await page.getByText(/derived from up to/).count(), 0);
    await shot('05-service-map');
    await page.getByTestId('map-node').filter({ hasText: 'payments@ap-south' }).click();
    await page.waitForURL(/\/search\?.*service=payments.*cluster=ap-south/);
    await page.getByTestId('result-count').waitFor();
  });

  test('dashboards: storage per cluster and shard', async () => {
    await page.goto(`${gw.http}/dashboards`);
    const storage = page.getByTestId('storage');
    await storage.waitFor();
    const text = await storage.textContent();
    for (const c of ['us-east', 'eu-west', 'ap-south']) assert.ok(text.includes(c), `${c} in storage`);
    assert.match(text, /Total: .* 10,?073 spans/);
  });

  test('dashboards: RED charts from the agent\'s windows, example traces open the trace', async () => {
    const red = await redReady;
    assert.ok(!(red instanceof Error), String(red?.message));
    // Where an alert notification links to.
    await page.goto(`${gw.http}/dashboards?service=inventory&range=15m`);
    const row = page.getByTestId('red-series');
    await row.first().waitFor();
    assert.equal(await row.count(), 1);
    const cells = await row.first().locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 5), [AGENT_CLUSTER, 'inventory', 'GET /stock', '20', '5 (25.0%)']);
    for (const c of cells.slice(5, 8)) assert.match(c, /^\d+(\.\d)? ms$/, `a quantile in ${cells}`);
    // Three charts, each with the series in its legend (latency: p50, p95, p99).
    for (const id of ['red-rate', 'red-errors', 'red-latency']) assert.equal(await page.locator(`[data-testid=${id}] canvas`).count(), 1, id);
    const legend = (id) => page.locator(`[data-testid=${id}] .u-legend .u-series:not(:first-child) .u-label`).allTextContents();
    assert.deepEqual(await legend('red-rate'), ['inventory@eu-central GET /stock']);
    assert.deepEqual(await legend('red-latency'), ['p50', 'p95', 'p99'].map((q) => `inventory@eu-central GET /stock ${q}`));
    assert.equal(await page.getByLabel('Time range').inputValue(), '15m');
    await shot('06-dashboards-red');
    // A range that holds no windows says so.
    await page.getByLabel('Service').selectOption('frontend');
    await page.waitForURL(/service=frontend/);
    await page.getByTestId('red-empty').waitFor();
    await page.goBack();
    await row.first().waitFor();
    const exemplar = page.getByTestId('exemplar').first();
    await exemplar.waitFor();
    const id = (await exemplar.getAttribute('href')).split('/').pop();
    assert.ok(data.stock.ids.includes(id), `${id} is one of the traces sent`);
    await exemplar.click();
    await page.waitForURL(`**/trace/${id}`);
    await page.getByTestId('span-row').filter({ hasText: 'GET /stock' }).waitFor();
  });

  test('alerts: token, validation message from the API, create, edit, delete', async () => {
    await page.goto(`${gw.http}/alerts`);
    // Anonymous callers read here; the rules (admin API) ask for a sign-in,
    // and a way back to reading without a token.
    const signIn = page.getByTestId('sign-in');
    await signIn.waitFor();
    await signIn.getByRole('button', { name: 'Continue without a token' }).waitFor();
    await signIn.locator('input[name=token]').fill(TOKEN);
    await signIn.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('principal-name').filter({ hasText: 'admin-token' }).waitFor();
    // The rule made through the admin API, with its state from /api/v1/alerts.
    const stockRule = page.getByTestId('rule').filter({ hasText: STOCK_RULE });
    await stockRule.getByTestId('alert-state').waitFor();
    assert.match(await stockRule.getByTestId('alert-state').textContent(), /^(inactive|pending|firing|resolved)$/);
    assert.equal(await stockRule.getByTestId('alert-dashboard').getAttribute('href'), `/dashboards?cluster=${AGENT_CLUSTER}&service=inventory`);
    await page.getByTestId('alert-history').waitFor();
    await page.getByRole('button', { name: 'New rule' }).click();
    const form = page.getByRole('form', { name: 'Alert rule' });
    await form.locator('input[name=name]').fill('checkout errors');
    await form.locator('input[name=expr]').fill('   ');
    await form.getByRole('button', { name: 'Save' }).click();
    assert.match(await page.getByTestId('rule-error').textContent(), /a comparison is required/);
    // The grammar's reason for a bad expression.
    await form.locator('input[name=expr]').fill('p99{service="checkout"} > 300');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.getByTestId('rule-error').filter({ hasText: 'unknown metric' }).waitFor();
    // Both refusals were the API's (400), not the form's.
    for (let i = 0; i < 2; i++) {
      const refused = badResponses.findIndex((r) => r.startsWith('400 /api/v1/admin/alert-rules/'));
      assert.ok(refused >= 0, `the API answered 400: ${badResponses}`);
      badResponses.splice(refused, 1);
    }
    await form.locator('input[name=expr]').fill('error_ratio{service="checkout"} > 0.05');
    await form.getByRole('button', { name: 'Save' }).click();
    const rule = page.getByTestId('rule').filter({ hasText: 'checkout errors' });
    await rule.waitFor();
    assert.match(await rule.textContent(), /60s/);
    await rule.getByRole('button', { name: 'Edit' }).click();
    await form.locator('input[name=for_secs]').fill('300');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.getByTestId('rule').filter({ hasText: '300s' }).waitFor();
    await shot('07-alerts');
    await rule.getByRole('button', { name: 'Delete' }).click();
    await rule.getByRole('button', { name: 'Confirm delete' }).click();
    await waitFor('the rule to be gone', async () => (await page.getByTestId('rule').count()) === 1, 10_000);
  });

  test('clusters: clusters, agents, members and leader', async () => {
    // The agent's spans reached the gateway (its registry counts them at commit).
    const api = await waitFor(
      'the agent in /api/v1/agents with spans',
      async () => {
        const r = await (await fetch(`${gw.http}/api/v1/agents`)).json();
        const a = r.data?.find((x) => x.cluster === AGENT_CLUSTER);
        return a?.spansTotal > 0 && a.buffer && a;
      },
      30_000,
    );
    await page.goto(`${gw.http}/clusters`);
    const clusters = page.getByTestId('clusters');
    await clusters.waitFor();
    // Each cluster's row (its stored spans arrive separately).
    for (const c of ['us-east', 'eu-west', 'ap-south', AGENT_CLUSTER]) await clusters.locator('tr', { hasText: c }).filter({ hasText: 'spans' }).waitFor();
    const members = page.getByTestId('members');
    await members.waitFor();
    assert.match(await members.textContent(), /1\s*leader/);
    // The agent of eu-central: connected, its span count, its buffer as a bar.
    const agents = page.getByTestId(`agents-${AGENT_CLUSTER}`);
    await agents.waitFor();
    const row = agents.getByTestId('agent-row');
    assert.equal(await row.count(), 1);
    const text = await row.textContent();
    assert.ok(text.includes(api.agentId), text);
    assert.equal(await row.locator('.badge').filter({ hasText: /^connected$/ }).count(), 1, text);
    const spans = Number((await row.getByTestId('agent-spans').textContent()).replace(/[^0-9]/g, ''));
    assert.ok(spans >= api.spansTotal && spans > 0, `spans ${spans}, api ${api.spansTotal}`);
    assert.match(await row.getByTestId('agent-buffer').textContent(), /\/ \d+(\.\d)? (MiB|GiB)/);
    assert.equal(await row.getByRole('meter').count(), 1);
    assert.match(await agents.locator('h3').textContent(), /1 agent, 1 connected, ingest \d/);
    await shot('08-clusters');
  });

  test('dark theme', async () => {
    await page.goto(`${gw.http}/trace/${data.checkout.traceId}`);
    await page.getByTestId('span-row').first().waitFor();
    await page.getByRole('button', { name: 'Switch theme' }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    await page.getByTestId('span-row').filter({ hasText: 'POST /pay' }).click();
    await shot('09-trace-dark');
    await page.getByRole('button', { name: 'Switch theme' }).click();
  });

  test('no console errors and no unexpected failed requests', () => {
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(badResponses, []);
  });
});
