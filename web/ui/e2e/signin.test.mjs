// End-to-end: sign-in and access scope in real headless Chromium against a
// real gateway run with `--auth tokens --admin-token …` (loopback).
//
// A `read` token scoped to cluster a is made with the admin API; a trace
// crosses from cluster a to cluster b through two real meridian-agents
// (each with its own cluster certificate from the gateway's dev CA, so the
// gateway stamps each span with the agent's cluster). Then: the UI asks
// for a sign-in, refuses a wrong token, shows the scoped caller in the top
// bar, lists only cluster a's services, shows only a's spans of the trace
// with the hidden-spans warning, and signs out to the sign-in view; an
// admin signed in next sees everything (nothing cached from the scoped
// caller). Screenshots go to $MERIDIAN_WEB_E2E_OUT (10-…).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startAgent } from './agent.mjs';
import { startGateway, waitFor } from './gateway.mjs';
import { Batch, newTraceId, post, span } from './traces.mjs';

const CHROMIUM = process.env.MERIDIAN_CHROMIUM ?? '/usr/bin/chromium';
const GATEWAY = process.env.MERIDIAN_GATEWAY_BIN;
const AGENT = process.env.MERIDIAN_AGENT_BIN;
const OUT = resolve(process.env.MERIDIAN_WEB_E2E_OUT ?? 'e2e-out');
const ADMIN = 'e2e-signin-bootstrap-secret';

let gw;
const agents = [];
let browser;
let page;
/** The scoped read token's secret, and the cross-cluster trace. */
let scoped;
let trace;
const consoleErrors = [];
const badResponses = [];

async function shot(name) {
  await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: false });
}

/** A call to the gateway's API as the bootstrap admin. */
async function asAdmin(path, init = {}) {
  const res = await fetch(`${gw.http}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** frontend@a → checkout@b: two spans in each cluster, each cluster's
 * spans sent through its own agent. */
async function crossClusterTrace(agentA, agentB) {
  const traceId = newTraceId();
  const t0Ms = Date.now() - 60e3;
  const s = (o) => span({ traceId, t0Ms, ...o });
  const str = (key, value) => ({ key, value: { stringValue: value } });
  const root = s({ name: 'GET /order', kind: 'server', startMs: 0, endMs: 100, attrs: [str('http.route', '/order')] });
  const call = s({ parent: root, name: 'POST checkout', kind: 'client', startMs: 10, endMs: 90 });
  const server = s({ parent: call, name: 'POST /checkout', kind: 'server', startMs: 12, endMs: 88 });
  const charge = s({ parent: server, name: 'charge card', startMs: 20, endMs: 80 });
  const a = new Batch();
  a.add('frontend', 'a', root);
  a.add('frontend', 'a', call);
  const b = new Batch();
  b.add('checkout', 'b', server);
  b.add('checkout', 'b', charge);
  await post(agentA.otlpHttp, a);
  await post(agentB.otlpHttp, b);
  return { traceId, spans: 4 };
}

before(async () => {
  assert.ok(GATEWAY, 'set MERIDIAN_GATEWAY_BIN to the meridian-gateway binary');
  assert.ok(AGENT, 'set MERIDIAN_AGENT_BIN to the meridian-agent binary');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(OUT, { recursive: true });
  gw = await startGateway(GATEWAY, ['--auth', 'tokens', '--admin-token', ADMIN]);
  // Nothing is served without a token.
  const refused = await fetch(`${gw.http}/api/services`);
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).auth, 'tokens');
  // A read token for cluster a, once the single node leads.
  const made = await waitFor('the token made', async () => {
    const r = await asAdmin('/api/v1/admin/tokens', { method: 'POST', body: JSON.stringify({ name: 'team-a', role: 'read', clusters: ['a'] }) });
    return r.status === 200 && r.body;
  });
  assert.deepEqual(made.clusters, ['a']);
  scoped = made.token;
  for (const cluster of ['a', 'b']) agents.push(await startAgent({ agentExe: AGENT, gatewayExe: GATEWAY, gateway: gw, cluster }));
  trace = await crossClusterTrace(agents[0], agents[1]);
  await waitFor('the trace stored from both agents', async () => {
    const r = await asAdmin(`/api/traces/${trace.traceId}`);
    return r.body?.data?.[0]?.spans.length === trace.spans;
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
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() < 400) return;
    const path = new URL(r.url()).pathname;
    // The sign-in checks (401) and a read token at the admin API (403,
    // the cluster pickers try it) are expected; nothing else.
    const expected = (r.status() === 401 && path === '/api/v1/whoami') || (r.status() === 403 && path.startsWith('/api/v1/admin/'));
    if (!expected) badResponses.push(`${r.status()} ${path}`);
  });
});

after(async () => {
  await browser?.close();
  for (const a of agents) await a.stop();
  await gw?.stop();
});

async function signIn(token) {
  const form = page.getByTestId('sign-in');
  await form.waitFor();
  await form.locator('input[name=token]').fill(token);
  await form.getByRole('button', { name: 'Sign in' }).click();
}

async function serviceOptions() {
  await page.goto(`${gw.http}/search`);
  const select = page.getByLabel('Service');
  await select.locator('option', { hasText: 'frontend' }).waitFor({ state: 'attached' });
  return select.locator('option').allTextContents();
}

describe('sign-in and access scope in the web UI', () => {
  test('an old localStorage token is removed, and the UI asks for a sign-in', async () => {
    await page.goto(`${gw.http}/`);
    await page.getByTestId('sign-in').waitFor();
    await page.evaluate(() => localStorage.setItem('meridian.adminToken', 'left-behind'));
    await page.reload();
    await page.getByTestId('sign-in').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('meridian.adminToken')), null);
    assert.match(await page.getByTestId('sign-in-reason').textContent(), /Bearer/);
    // No data, no navigation before a sign-in.
    assert.equal(await page.locator('.topbar nav a').count(), 0);
    await shot('10-sign-in');
  });

  test('a wrong token is refused with the gateway\'s reason', async () => {
    await signIn('mrd_not-a-real-token');
    const error = page.getByTestId('sign-in-error');
    await error.waitFor();
    assert.match(await error.textContent(), /not valid/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
    await shot('11-sign-in-refused');
  });

  test('the scoped token: principal and scope in the top bar, only cluster a\'s services', async () => {
    await signIn(scoped);
    const who = page.getByTestId('identity');
    await who.waitFor();
    assert.equal(await who.getByTestId('principal-name').textContent(), 'team-a');
    assert.equal(await who.getByTestId('principal-role').textContent(), 'read');
    assert.equal(await who.getByTestId('principal-scope').textContent(), 'cluster a');
    // Kept for this tab only, never in localStorage.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('meridian.token')), scoped);
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k !== 'meridian.theme').length), 0);
    // A reload keeps the tab signed in.
    const options = await serviceOptions();
    assert.deepEqual(options, ['frontend']);
    await page.getByTestId('identity').waitFor();
    await shot('12-signed-in-services');
  });

  test('the trace view shows only a\'s spans and says how many are hidden', async () => {
    await page.goto(`${gw.http}/trace/${trace.traceId}`);
    await page.getByTestId('span-row').first().waitFor();
    assert.equal(await page.getByTestId('span-count').textContent(), '2 spans');
    const rows = await page.getByTestId('span-row').allTextContents();
    assert.equal(rows.length, 2);
    assert.ok(rows.some((r) => r.includes('GET /order')));
    assert.ok(!rows.some((r) => r.includes('charge card') || r.includes('POST /checkout')));
    await page.locator('.notice.warn', { hasText: '2 spans outside your access scope are hidden' }).waitFor();
    await shot('13-trace-scoped');
  });

  test('sign-out returns to the sign-in view and forgets the token', async () => {
    await page.getByTestId('identity').getByRole('button', { name: 'Sign out' }).click();
    await page.getByTestId('sign-in').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.getByTestId('identity').count(), 0);
    assert.equal(await page.getByTestId('span-row').count(), 0);
    await shot('14-signed-out');
  });

  test('an admin signed in next sees every cluster: nothing kept from the scoped caller', async () => {
    await signIn(ADMIN);
    const who = page.getByTestId('identity');
    await who.waitFor();
    assert.equal(await who.getByTestId('principal-name').textContent(), 'admin-token');
    assert.equal(await who.getByTestId('principal-scope').textContent(), 'every cluster');
    // The view reloaded as the admin: the whole trace, no warning.
    await page.getByTestId('span-row').first().waitFor();
    assert.equal(await page.getByTestId('span-count').textContent(), '4 spans');
    assert.equal(await page.locator('.notice.warn', { hasText: 'access scope' }).count(), 0);
    assert.deepEqual(await serviceOptions(), ['checkout', 'frontend']);
    await page.getByTestId('identity').getByRole('button', { name: 'Sign out' }).click();
    await page.getByTestId('sign-in').waitFor();
  });

  test('no console errors and no unexpected failed requests', () => {
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(badResponses, []);
  });
});
