import { describe, expect, it } from 'vitest';
import { criticalPath, criticalSpans } from './critical';
import { jtrace } from './fixture';
import { buildTrace } from './trace';

const path = (spans: Parameters<typeof jtrace>[0]) =>
  criticalPath(buildTrace(jtrace(spans))).map((s) => `${s.spanId}:${s.start}-${s.end}`);

describe('criticalPath', () => {
  it('follows the last-finishing child, then the latest one still running before it', () => {
    expect(
      path([
        { id: 'r', start: 0, dur: 100 },
        { id: 'a', parent: 'r', start: 10, dur: 30 },
        { id: 'b', parent: 'r', start: 20, dur: 60 },
        { id: 'c', parent: 'r', start: 5, dur: 10 },
      ]),
    ).toEqual(['r:0-5', 'c:5-10', 'a:10-20', 'b:20-80', 'r:80-100']);
  });

  it('skips a child overlapped by a later-finishing one', () => {
    // a (10-40) ends inside b (5-80): b covers it, a is not on the path.
    expect(
      path([
        { id: 'r', start: 0, dur: 100 },
        { id: 'a', parent: 'r', start: 10, dur: 30 },
        { id: 'b', parent: 'r', start: 5, dur: 75 },
      ]),
    ).toEqual(['r:0-5', 'b:5-80', 'r:80-100']);
  });

  it('descends into grandchildren and cuts children that outlive the parent', () => {
    const segs = path([
      { id: 'r', start: 0, dur: 100 },
      { id: 'a', parent: 'r', start: 50, dur: 80 },
      { id: 'g', parent: 'a', start: 60, dur: 10 },
    ]);
    expect(segs).toEqual(['r:0-50', 'a:50-60', 'g:60-70', 'a:70-100']);
  });

  it('is the root alone without children, and empty without spans', () => {
    expect(path([{ id: 'r', start: 0, dur: 10 }])).toEqual(['r:0-10']);
    expect(criticalPath(buildTrace(jtrace([])))).toEqual([]);
  });

  it('names the spans on the path', () => {
    const t = buildTrace(
      jtrace([
        { id: 'r', start: 0, dur: 100 },
        { id: 'a', parent: 'r', start: 10, dur: 30 },
        { id: 'b', parent: 'r', start: 5, dur: 75 },
      ]),
    );
    expect([...criticalSpans(criticalPath(t))].sort()).toEqual(['b', 'r']);
  });
});
