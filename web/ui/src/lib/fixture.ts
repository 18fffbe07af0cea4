// Test helper: a Jaeger trace from a compact description.

import type { JTrace } from './trace';

export interface FSpan {
  id: string;
  parent?: string;
  start: number;
  dur: number;
  svc?: string;
  cluster?: string;
  op?: string;
  error?: boolean;
}

export function jtrace(spans: FSpan[], warnings: string[] = []): JTrace {
  const processes: JTrace['processes'] = {};
  const pid = (svc: string, cluster: string) => {
    const key = `${svc}@${cluster}`;
    if (!processes[key]) {
      processes[key] = { serviceName: svc, tags: [{ key: 'k8s.cluster.name', type: 'string', value: cluster }] };
    }
    return key;
  };
  return {
    traceID: 't1',
    warnings,
    processes,
    spans: spans.map((s) => ({
      traceID: 't1',
      spanID: s.id,
      operationName: s.op ?? `op-${s.id}`,
      references: s.parent ? [{ refType: 'CHILD_OF', traceID: 't1', spanID: s.parent }] : [],
      startTime: s.start,
      duration: s.dur,
      tags: s.error ? [{ key: 'error', type: 'bool', value: true }] : [],
      logs: [],
      processID: pid(s.svc ?? 'svc', s.cluster ?? 'east'),
    })),
  };
}
