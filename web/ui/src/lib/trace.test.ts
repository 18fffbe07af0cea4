import { describe, expect, it } from 'vitest';
import { jtrace } from './fixture';
import { buildTrace, clusterOf, summarize } from './trace';

describe('buildTrace', () => {
  it('orders spans depth-first with children by start time', () => {
    const t = buildTrace(
      jtrace([
        { id: 'c2', parent: 'r', start: 50, dur: 10 },
        { id: 'r', start: 0, dur: 100 },
        { id: 'c1', parent: 'r', start: 10, dur: 20 },
        { id: 'g', parent: 'c1', start: 12, dur: 5 },
      ]),
    );
    expect(t.spans.map((s) => `${s.id}:${s.depth}`)).toEqual(['r:0', 'c1:1', 'g:2', 'c2:1']);
    expect(t.spans.map((s) => s.index)).toEqual([0, 1, 2, 3]);
    expect([t.start, t.end, t.duration]).toEqual([0, 100, 100]);
  });

  it('marks cluster crossings, errors and missing parents', () => {
    const t = buildTrace(
      jtrace([
        { id: 'r', start: 0, dur: 100, svc: 'web', cluster: 'east' },
        { id: 'c', parent: 'r', start: 10, dur: 20, svc: 'pay', cluster: 'west', error: true },
        { id: 'o', parent: 'gone', start: 5, dur: 1 },
      ]),
    );
    const c = t.byId.get('c')!;
    expect(c.crossesCluster).toBe(true);
    expect(c.error).toBe(true);
    expect(t.byId.get('r')!.crossesCluster).toBe(false);
    expect(t.byId.get('o')!.missingParent).toBe(true);
    expect(t.roots.map((r) => r.id)).toEqual(['r', 'o']);
    expect(t.clusters).toEqual(['east', 'west']);
    expect(t.errorCount).toBe(1);
  });

  it('survives a reference cycle', () => {
    const t = buildTrace(
      jtrace([
        { id: 'a', parent: 'b', start: 0, dur: 1 },
        { id: 'b', parent: 'a', start: 1, dur: 1 },
      ]),
    );
    expect(t.spans).toHaveLength(2);
  });

  it('finds the skew warning', () => {
    const t = buildTrace(jtrace([{ id: 'r', start: 0, dur: 1 }], ['x', 'clock skew: west +250ms']));
    expect(t.skewWarning).toBe('clock skew: west +250ms');
  });

  it('builds 10,000 spans quickly', () => {
    const spans = [{ id: 'r', start: 0, dur: 1e6 }];
    for (let i = 0; i < 9999; i++) spans.push({ id: `s${i}`, parent: i < 100 ? 'r' : `s${i % 100}`, start: i, dur: 10 } as never);
    const t0 = performance.now();
    const t = buildTrace(jtrace(spans));
    expect(t.spans).toHaveLength(10000);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('clusterOf', () => {
  it('prefers meridian.cluster, then k8s.cluster.name', () => {
    expect(clusterOf({ serviceName: 's', tags: [{ key: 'k8s.cluster.name', value: 'a' }, { key: 'meridian.cluster', value: 'b' }] })).toBe('b');
    expect(clusterOf({ serviceName: 's', tags: [{ key: 'k8s.cluster.name', value: 'a' }] })).toBe('a');
    expect(clusterOf({ serviceName: 's', tags: [] })).toBe('unknown');
  });
});

describe('summarize', () => {
  it('takes the root and counts', () => {
    const s = summarize(
      jtrace([
        { id: 'r', start: 0, dur: 100, svc: 'web', op: 'GET /', cluster: 'east' },
        { id: 'c', parent: 'r', start: 10, dur: 20, svc: 'pay', cluster: 'west', error: true },
      ]),
    );
    expect(s).toMatchObject({ rootService: 'web', rootOperation: 'GET /', rootMissing: false, spanCount: 2, errorCount: 1, clusters: ['east', 'west'], duration: 100 });
  });
});
