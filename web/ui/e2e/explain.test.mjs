// End-to-end "What's different?" and "Compare with…" (issue 22) in real
// headless Chromium against a real gateway: 200 frontend → inventory
// traces over two clusters, the slow ones exactly those whose query hits
// db.shard=7 in eu-west. Brushing the slow points on the search scatter
// and asking "What's different?" shows db.shard = 7 on top and the extra
// time in inventory@eu-west; comparing a slow with a fast trace marks the
// query slower.
//
//   MERIDIAN_GATEWAY_BIN=<target>/debug/meridian-gateway node --test e2e/explain.test.mjs

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startGateway, waitFor } from './gateway.mjs';
import { Batch, newTraceId, post, span } from './traces.mjs';

const CHROMIUM = process.env.MERIDIAN_CHROMIUM ?? '/usr/bin/chromium';
const GATEWAY = process.env.MERIDIAN_GATEWAY_BIN;
const OUT = resolve(process.env.MERIDIAN_WEB_E2E_OUT ?? 'e2e-out');
const N = 200;

let gw;
let browser;
let page;
const slow = [];
const fast = [];

before(async () => {
  assert.ok(GATEWAY, 'set MERIDIAN_GATEWAY_BIN to the meridian-gateway binary');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(OUT, { recursive: true });
  gw = await startGateway(GATEWAY, ['--otlp-trust-cluster-attribute']);
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
  await page.screenshot({ path: `${OUT}/compare.png`, fullPage: true });
});

test("an alert's link opens the same explanation", async () => {
  await page.goto(`${gw.http}/explain?service=frontend&minDuration=200ms&lookback=1h`);
  const first = page.getByTestId('explain-dimension').first();
  await first.waitFor();
  assert.match(await first.textContent(), /span\.db\.shard\s*=\s*7/);
});
