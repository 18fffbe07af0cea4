// Starts a real meridian-agent for one cluster on port 0, connected to a
// gateway over mTLS with a cluster certificate from the gateway's dev CA
// (`meridian-gateway certs issue`), and reads its bound addresses from its
// JSON "agent started" log line (as tests/src/process.rs does).

import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 30_000;

export async function startAgent({ agentExe, gatewayExe, gateway, cluster }) {
  const certs = join(gateway.dir, `agent-certs-${cluster}`);
  const ca = join(gateway.dir, 'tls');
  execFileSync(gatewayExe, ['certs', 'issue', '--cluster', cluster, '--out', certs, '--ca-dir', ca], { stdio: ['ignore', 'ignore', 'pipe'] });
  const args = [
    ['--cluster', cluster],
    ['--gateway', gateway.federation],
    ['--tls-ca', join(ca, 'ca.pem')],
    ['--tls-cert', join(certs, `cluster-${cluster}.pem`)],
    ['--tls-key', join(certs, `cluster-${cluster}-key.pem`)],
    ['--buffer-dir', join(gateway.dir, `agent-${cluster}`)],
    ['--log-format', 'json'],
    ...['--otlp-grpc', '--otlp-http', '--zipkin', '--admin', '--sampling', '--sampling-grpc'].map((f) => [f, '127.0.0.1:0']),
  ].flat();
  const child = spawn(agentExe, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  const log = [];
  const lines = createInterface({ input: child.stderr });
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start in ${START_TIMEOUT_MS} ms:\n${log.slice(-20).join('\n')}`)), START_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${agentExe}: ${e.message} (build it with \`cargo build -p edge-agent\`)`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited (${code}) before starting:\n${log.slice(-20).join('\n')}`));
    });
    lines.on('line', (line) => {
      log.push(line);
      if (log.length > 2000) log.shift();
      if (process.env.MERIDIAN_TEST_LOGS === '1') process.stderr.write(`[agent ${cluster}] ${line}\n`);
      let f;
      try {
        f = JSON.parse(line).fields;
      } catch {
        return;
      }
      if (f?.message === 'agent started') {
        clearTimeout(timer);
        resolve(f);
      }
    });
  });
  const f = await started;
  return {
    otlpHttp: `http://${f.otlp_http}`,
    log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}
