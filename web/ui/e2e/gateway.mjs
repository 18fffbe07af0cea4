// Starts a real meridian-gateway on port 0 (embedded store in a temp dir)
// and reads its bound addresses from the JSON "gateway started" log line.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 60_000;

export async function startGateway(exe, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-web-e2e-'));
  const args = ['--data-dir', dir, '--log-format', 'json'];
  for (const flag of ['--http', '--tempo-http', '--zipkin-http', '--federation', '--otlp-grpc', '--otlp-http', '--raft']) args.push(flag, '127.0.0.1:0');
  args.push(...extraArgs);
  const child = spawn(exe, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  const log = [];
  const lines = createInterface({ input: child.stderr });
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start in ${START_TIMEOUT_MS} ms:\n${log.slice(-20).join('\n')}`)), START_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${exe}: ${e.message} (build it with \`cargo build -p gateway\`)`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code}) before starting:\n${log.slice(-20).join('\n')}`));
    });
    lines.on('line', (line) => {
      log.push(line);
      if (log.length > 2000) log.shift();
      if (process.env.MERIDIAN_TEST_LOGS === '1') process.stderr.write(`[gateway] ${line}\n`);
      let f;
      try {
        f = JSON.parse(line).fields;
      } catch {
        return;
      }
      if (f?.message === 'gateway started') {
        clearTimeout(timer);
        resolve(f);
      }
    });
  });
  const f = await started;
  return {
    http: `http://${f.http}`,
    otlpHttp: `http://${f.otlp_http}`,
    federation: `https://${f.federation}`,
    /** The data dir; its dev CA is in `tls/`. */
    dir,
    log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a truthy value (or throws after `ms`). */
export async function waitFor(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
