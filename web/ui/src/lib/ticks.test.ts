import { describe, expect, it } from 'vitest';
import { formatDuration, niceStep, parseGoDuration, ticks } from './ticks';

describe('niceStep', () => {
  it('picks 1-2-5 steps', () => {
    expect(niceStep(1000, 10)).toBe(100);
    expect(niceStep(1500, 10)).toBe(200);
    expect(niceStep(4000, 10)).toBe(500);
    expect(niceStep(7, 10)).toBe(1);
    expect(niceStep(0, 10)).toBe(1);
  });
});

describe('ticks', () => {
  it('covers the window with round labels relative to the origin', () => {
    const t = ticks(0, 1_000_000, 5);
    expect(t.map((x) => x.label)).toEqual(['0', '200ms', '400ms', '600ms', '800ms', '1s']);
    expect(t[5].at).toBe(1);
  });
  it('starts at the first round value inside a zoomed window', () => {
    const t = ticks(1_000_150, 1_000_900, 4, 1_000_000);
    expect(t[0]).toEqual({ offset: 200, at: 50 / 750, label: '200µs' });
    expect(t.every((x) => x.at >= 0 && x.at <= 1)).toBe(true);
  });
  it('handles an empty window', () => {
    expect(ticks(5, 5, 4)).toHaveLength(1);
  });
});

describe('formatDuration', () => {
  it('chooses the unit', () => {
    expect(formatDuration(0)).toBe('0');
    expect(formatDuration(250)).toBe('250µs');
    expect(formatDuration(1500)).toBe('1.5ms');
    expect(formatDuration(12_345)).toBe('12.3ms');
    expect(formatDuration(1_250_000)).toBe('1.25s');
    expect(formatDuration(125_000_000)).toBe('2m 5s');
    expect(formatDuration(-2000)).toBe('-2ms');
  });
  it('parses Go durations', () => {
    expect(parseGoDuration('1.5s')).toBe(1_500_000);
    expect(parseGoDuration('300ms')).toBe(300_000);
    expect(parseGoDuration('250us')).toBe(250);
    expect(parseGoDuration('fast')).toBeNull();
  });
});
