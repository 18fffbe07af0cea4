import { describe, expect, it } from 'vitest';
import { bufferFill, formatAgo, formatRate, groupAgents, type AgentRow } from './agents';

const row = (cluster: string, agentId: string, rate: number, connected = true): AgentRow => ({
  cluster,
  agentId,
  gateway: 1,
  connected,
  lastSeenMs: 0,
  spansPerSec: rate,
  spansTotal: 0,
  buffer: null,
});

describe('groupAgents', () => {
  it('groups per cluster, sorted, with the total rate and connected count', () => {
    const g = groupAgents([row('west', 'b', 2), row('east', 'z', 1.5, false), row('west', 'a', 3)]);
    expect(g.map((c) => c.cluster)).toEqual(['east', 'west']);
    expect(g[1].agents.map((a) => a.agentId)).toEqual(['a', 'b']);
    expect(g[1].spansPerSec).toBe(5);
    expect(g[0].connected).toBe(0);
    expect(groupAgents([])).toEqual([]);
  });
});

describe('buffer and formats', () => {
  it('clamps the fill and treats an unknown capacity as empty', () => {
    expect(bufferFill({ usedBytes: 25, capacityBytes: 100 })).toBe(0.25);
    expect(bufferFill({ usedBytes: 250, capacityBytes: 100 })).toBe(1);
    expect(bufferFill({ usedBytes: 5, capacityBytes: 0 })).toBe(0);
    expect(bufferFill(null)).toBe(0);
  });
  it('formats rates and ages', () => {
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(2.345)).toBe('2.3/s');
    expect(formatRate(1500)).toBe('1.5k/s');
    expect(formatAgo(1000, 4000)).toBe('3 s ago');
    expect(formatAgo(0, 7_200_000)).toBe('2 h ago');
  });
});
