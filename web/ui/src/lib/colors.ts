// Stable colours: the same service or cluster gets the same colour on
// every page and every load (hash of the name into a palette).

const SERVICE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#86bcb6', '#d37295', '#8cd17d', '#a0cbe8'];
const CLUSTER = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#dc2626'];

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export const serviceColor = (name: string) => SERVICE[hash(name) % SERVICE.length];
export const clusterColor = (name: string) => CLUSTER[hash(name) % CLUSTER.length];
