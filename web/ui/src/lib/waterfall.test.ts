import { describe, expect, it } from 'vitest';
import { jtrace } from './fixture';
import { buildTrace } from './trace';
import { ancestors, barFor, clampWindow, clipBar, descendantCount, findSpans, navigate, rowWindow, visibleRows } from './waterfall';

const tree = () =>
  buildTrace(
    jtrace([
      { id: 'r', start: 0, dur: 100 },
      { id: 'a', parent: 'r', start: 10, dur: 40, op: 'charge' },
      { id: 'a1', parent: 'a', start: 12, dur: 5 },
      { id: 'a2', parent: 'a', start: 20, dur: 5 },
      { id: 'b', parent: 'r', start: 60, dur: 30 },
    ]),
  );

describe('visibleRows', () => {
  it('hides the descendants of collapsed spans', () => {
    const t = tree();
    expect(visibleRows(t, new Set()).map((s) => s.id)).toEqual(['r', 'a', 'a1', 'a2', 'b']);
    expect(visibleRows(t, new Set(['a'])).map((s) => s.id)).toEqual(['r', 'a', 'b']);
    expect(visibleRows(t, new Set(['r'])).map((s) => s.id)).toEqual(['r']);
    expect(descendantCount(t, t.byId.get('a')!)).toBe(2);
  });
});

describe('barFor', () => {
  it('places a bar as fractions of the window', () => {
    expect(barFor(10, 50, { start: 0, end: 100 })).toEqual({ left: 0.1, width: 0.4, visible: true });
    expect(barFor(200, 300, { start: 0, end: 100 }).visible).toBe(false);
    expect(barFor(5, 5, { start: 0, end: 100 }).width).toBeGreaterThan(0);
  });
  it('clips a bar to a zoomed window', () => {
    expect(clipBar(barFor(0, 100, { start: 50, end: 75 }))).toEqual({ left: 0, width: 1, visible: true });
    expect(clipBar(barFor(60, 100, { start: 50, end: 100 }))).toEqual({ left: 0.2, width: 0.8, visible: true });
  });
});

describe('rowWindow', () => {
  it('renders only the rows in view plus overscan', () => {
    expect(rowWindow(0, 240, 24, 10000, 5)).toEqual({ first: 0, last: 15 });
    expect(rowWindow(24 * 5000, 240, 24, 10000, 5)).toEqual({ first: 4995, last: 5015 });
    expect(rowWindow(24 * 9999, 240, 24, 10000, 5).last).toBe(10000);
  });
});

describe('clampWindow', () => {
  it('keeps the window inside the trace', () => {
    expect(clampWindow({ start: -50, end: 50 }, { start: 0, end: 100 })).toEqual({ start: 0, end: 100 });
    expect(clampWindow({ start: 90, end: 120 }, { start: 0, end: 100 })).toEqual({ start: 70, end: 100 });
    expect(clampWindow({ start: 10, end: 10 }, { start: 0, end: 1000 }).end).toBe(11);
  });
});

describe('navigate', () => {
  it('moves, collapses and expands like a tree view', () => {
    const t = tree();
    const rows = visibleRows(t, new Set());
    expect(navigate(rows, new Set(), null, 'ArrowDown')).toEqual({ selected: 'r' });
    expect(navigate(rows, new Set(), 'a', 'ArrowDown')).toEqual({ selected: 'a1' });
    expect(navigate(rows, new Set(), 'a', 'ArrowUp')).toEqual({ selected: 'r' });
    expect(navigate(rows, new Set(), 'a', 'ArrowLeft')).toEqual({ selected: 'a', collapse: 'a' });
    expect(navigate(rows, new Set(), 'a1', 'ArrowLeft')).toEqual({ selected: 'a' });
    expect(navigate(rows, new Set(['a']), 'a', 'ArrowRight')).toEqual({ selected: 'a', expand: 'a' });
    expect(navigate(rows, new Set(), 'a', 'ArrowRight')).toEqual({ selected: 'a1' });
  });
});

describe('findSpans', () => {
  it('matches operations and tags, and ancestors expand to a hit', () => {
    const t = tree();
    expect([...findSpans(t, 'CHARGE')]).toEqual(['a']);
    expect(findSpans(t, ' ').size).toBe(0);
    expect(ancestors(t, 'a2')).toEqual(['a', 'r']);
  });
});
