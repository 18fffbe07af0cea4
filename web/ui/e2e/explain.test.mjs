// End-to-end "What's different?" and "Compare with…" (issue 22) in real
// headless Chromium against a real gateway: 200 frontend → inventory
// traces over two clusters, the slow ones exactly those whose query hits
// db.shard=7 in eu-west. Brushing the slow points on the search scatter
// and asking "What's different?" shows db.shard = 7 on top and the extra
// time in inventory@eu-west; comparing a slow with a fast trace marks the
// query slower. A latency rule on payments, fed by a real agent's RED
// windows, fires; the Alerts page names the planted cause
// (payment.provider = acme) and its link opens the same explanation.
//
//   MERIDIAN_GATEWAY_BIN=<target>/debug/meridian-gateway \
//   MERIDIAN_AGENT_BIN=<target>/debug/meridian-agent node --test e2e/explain.test.mjs

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startAgent } from './agent.mjs';
import { startGateway, waitFor } from './gateway.mjs';
import { Batch, newTraceId, post, span } from './traces.mjs';

const CHROMIUM = process.env.MERIDIAN_CHROMIUM ?? '/usr/bin/chromium';
const GATEWAY = process.env.MERIDIAN_GATEWAY_BIN;
const AGENT = process.env.MERIDIAN_AGENT_BIN;
const TOKEN = 'e2e-explain-admin-secret';
const RULE = 'payments slow';
const OUT = resolve(process.env.MERIDIAN_WEB_E2E_OUT ?? 'e2e-out');
const N = 200;

let gw;
let browser;
let page;
const slow = [];
const fast = [];

before(async () => {
  assert.ok(GATEWAY, 'set MERIDIAN_GATEWAY_BIN to the meridian-gateway binary');
  assert.ok(AGENT, 'set MERIDIAN_AGENT_BIN to the meridian-agent binary');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(OUT, { recursive: true });
  gw = await startGateway(GATEWAY, ['--otlp-trust-cluster-attribute', '--admin-token', TOKEN]);
  const now = Date.now();
  const batch = new Batch();
  for (let i = 0; i < N; i++) {
    const traceId = newTraceId();
    const shard = i % 10;
    const dbMs = 10 + ((i * 37) % 20) + (shard === 7 ? 300 : 0);
    const t0Ms = now - 30 * 60e3 + i * 8_000;
    const s = (o) => span({ traceId, t0Ms, ...o });
    const root = s({ name: 'GET /checkout', kind: 'server', startMs: 0, endMs: dbMs + 40 });
    const call = s({ parent: root, name: 'GET stock', kind: 'client', startMs: 5, endMs: dbMs + 30 });
    const server = s({ parent: call, name: 'GET /stock', kind: 'server', startMs: 7, endMs: dbMs + 28 });
    const db = s({ parent: server, name: 'SELECT stock', kind: 'client', startMs: 10, endMs: 10 + dbMs, attrs: [{ key: 'db.shard', value: { intValue: String(shard) } }] });
    batch.add('frontend', 'us-east', root);
    batch.add('frontend', 'us-east', call);
    batch.add('inventory', 'eu-west', server);
    batch.add('inventory', 'eu-west', db);
    (shard === 7 ? slow : fast).push(traceId);
  }
  await post(gw.otlpHttp, batch);
  await waitFor('the traces to be searchable', async () => {
    const r = await (await fetch(`${gw.http}/api/traces?service=frontend&limit=1000&lookback=1h`)).json();
    return r.data?.length === N;
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
});

after(async () => {
  await browser?.close();
  await gw?.stop();
});

test("brush the slow points, see what's different", async () => {
  await page.goto(`${gw.http}/search?service=frontend&limit=500`);
  await page.getByTestId('result-count').waitFor();
  const over = page.locator('[data-testid=scatter] .u-over');
  const box = await over.boundingBox();
  assert.ok(box, 'the plot area');
  // The upper half of the plot: durations above ~55 % of the longest.
  await page.mouse.move(box.x + 2, box.y + 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 4, { steps: 5 });
  await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.getByTestId('brush').waitFor();
  await page.getByRole('button', { name: "What's different?" }).click();
  const first = page.getByTestId('explain-dimension').first();
  await first.waitFor();
  const text = await first.textContent();
  assert.match(text, /span\.db\.shard\s*=\s*7/, text);
  assert.match(await page.getByTestId('explain-sides').textContent(), new RegExp(`^${slow.length} selected traces`));
  const latency = await page.getByTestId('explain-latency').locator('li').first().textContent();
  assert.match(latency, /inventory\s*eu-west\s*\+/, latency);
  await page.getByTestId('explain-panel').screenshot({ path: `${OUT}/explain.png` });
});

test('compare a slow trace with a fast one', async () => {
  await page.goto(`${gw.http}/compare/${fast[0]}/${slow[0]}`);
  await page.getByTestId('compare').waitFor();
  const slower = await page.locator('[data-testid=compare-row][data-kind=slower]').allTextContents();
  assert.ok(slower.some((r) => r.includes('SELECT stock')), slower.join('\n'));
  assert.equal(await page.locator('[data-testid=compare-row][data-kind=added]').count(), 0);
  // Side-by-side waterfalls on one time scale: the slow trace's query bar
  // is many times the fast one's, and starts at the same offset.
  const bars = page.locator('[data-testid=compare-row]').filter({ hasText: 'SELECT stock' }).locator('.cmp-bar');
  assert.equal(await bars.count(), 2);
  const [fastBar, slowBar] = [await bars.nth(0).boundingBox(), await bars.nth(1).boundingBox()];
  assert.ok(slowBar.width > 5 * fastBar.width, `${slowBar.width} against ${fastBar.width}`);
  await page.screenshot({ path: `${OUT}/compare.png`, fullPage: true });
});

test("an alert's link opens the same explanation", async () => {
  await page.goto(`${gw.http}/explain?service=frontend&minDuration=200ms&lookback=1h`);
  const first = page.getByTestId('explain-dimension').first();
  await first.waitFor();
  assert.match(await first.textContent(), /span\.db\.shard\s*=\s*7/);
});

test('a firing latency rule explains itself on the Alerts page', async () => {
  // The rule watches payments' p99 over 1 min; the agent's RED windows
  // feed it. Its explanation compares the firing window's slow payments
  // traces with the window before.
  const agent = await startAgent({ agentExe: AGENT, gatewayExe: GATEWAY, gateway: gw, cluster: 'eu-west' });
  try {
    const put = await fetch(`${gw.http}/api/v1/admin/alert-rules/${encodeURIComponent(RULE)}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ expr: 'p99_ms{service="payments"}[1m] > 200', for_secs: 0 }),
    });
    assert.equal(put.status, 200, await put.text());
    const now = Date.now();
    const pay = (batch, t0Ms, provider, durMs) =>
      batch.add('payments', 'eu-west', span({ traceId: newTraceId(), t0Ms, name: 'POST /pay', kind: 'server', startMs: 0, endMs: durMs, attrs: [{ key: 'payment.provider', value: { stringValue: provider } }] }));
    const providers = ['stripe', 'adyen', 'braintree'];
    // The window before (stored directly, about 80 s ago): fast, one in ten via acme.
    const earlier = new Batch();
    for (let i = 0; i < 60; i++) pay(earlier, now - 80_000 + i * 200, i % 10 === 0 ? 'acme' : providers[i % 3], 20 + (i % 30));
    await post(gw.otlpHttp, earlier);
    // Now, through the agent: the acme payments are the slow ones.
    const current = new Batch();
    for (let i = 0; i < 40; i++) {
      const acme = i % 4 === 0;
      pay(current, now - 1000 - i * 10, acme ? 'acme' : providers[i % 3], acme ? 400 + i : 20 + (i % 30));
    }
    await post(agent.otlpHttp, current);
    await waitFor(
      'the rule to fire',
      async () => {
        const r = await (await fetch(`${gw.http}/api/v1/alerts`)).json();
        return r.rules?.find((x) => x.name === RULE)?.status?.state === 'firing';
      },
      120_000,
    );
    await page.goto(`${gw.http}/alerts`);
    const signIn = page.getByTestId('sign-in');
    await signIn.waitFor();
    await signIn.locator('input[name=token]').fill(TOKEN);
    await signIn.getByRole('button', { name: 'Sign in' }).click();
    const row = page.getByTestId('rule').filter({ hasText: RULE });
    await row.getByTestId('alert-state').filter({ hasText: /^firing$/ }).waitFor();
    const why = row.getByTestId('alert-why').locator('li').first();
    await why.waitFor();
    assert.match(await why.textContent(), /span\.payment\.provider\s*=\s*acme/, await why.textContent());
    await row.screenshot({ path: `${OUT}/alert-explain.png` });
    // The link opens the same explanation on this UI.
    await row.getByTestId('alert-explain').click();
    await page.waitForURL('**/explain?**');
    const first = page.getByTestId('explain-dimension').first();
    await first.waitFor();
    assert.match(await first.textContent(), /span\.payment\.provider\s*=\s*acme/);
    const latency = await page.getByTestId('explain-latency').locator('li').first().textContent();
    assert.match(latency, /payments\s*eu-west\s*\+/, latency);
  } finally {
    await agent.stop();
  }
});
