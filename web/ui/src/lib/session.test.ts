import { describe, expect, it } from 'vitest';
import { LEGACY_KEYS, memoryStorage, parsePrincipal, scopeLabel, Session, signInHint, signInNeeded, TOKEN_KEY } from './session';

describe('Session', () => {
  it('keeps one token in the session store and removes the old localStorage key', () => {
    const store = memoryStorage();
    const legacy = memoryStorage();
    legacy.setItem(LEGACY_KEYS[0], 'old-admin-secret');
    legacy.setItem('meridian.theme', 'dark');
    const s = new Session(store, legacy);
    expect(legacy.getItem('meridian.adminToken')).toBeNull();
    expect(legacy.getItem('meridian.theme')).toBe('dark');
    expect(s.token()).toBe('');
    s.signIn('  mrd_abc \n');
    expect(s.token()).toBe('mrd_abc');
    expect(store.getItem(TOKEN_KEY)).toBe('mrd_abc');
    expect(legacy.size()).toBe(1);
  });

  it('sign-in and sign-out change the generation and tell subscribers', () => {
    const store = memoryStorage();
    const s = new Session(store);
    const heard: string[] = [];
    const off = s.subscribe(() => heard.push(s.token()));
    const g0 = s.generation;
    s.signIn('mrd_a');
    s.signIn('mrd_b');
    expect(s.generation).toBe(g0 + 2);
    s.signOut();
    expect(s.token()).toBe('');
    expect(store.size()).toBe(0);
    expect(heard).toEqual(['mrd_a', 'mrd_b', '']);
    // An empty token is a sign-out.
    s.signIn('mrd_c');
    s.signIn('   ');
    expect(s.token()).toBe('');
    off();
    s.signIn('mrd_d');
    expect(heard.length).toBe(5);
  });

  it('survives a storage that throws', () => {
    const broken = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    };
    const s = new Session(broken, broken);
    expect(s.token()).toBe('');
    expect(() => s.signOut()).not.toThrow();
  });
});

describe('whoami and refusals', () => {
  it('reads a principal, its scope and expiry', () => {
    const p = parsePrincipal({ name: 'reader', kind: 'token', role: 'read', clusters: ['b', 'a'], expires_at_ms: 5, admin: false, auth: 'tokens' });
    expect(p).toEqual({ name: 'reader', kind: 'token', role: 'read', clusters: ['a', 'b'], expiresAtMs: 5, admin: false, auth: 'tokens' });
    expect(scopeLabel(p!)).toBe('clusters a, b');
    const admin = parsePrincipal({ name: 'admin-token', kind: 'admin-token', role: 'admin', clusters: '*', expires_at_ms: null, admin: true, auth: 'none' });
    expect(admin?.clusters).toBe('*');
    expect(admin?.expiresAtMs).toBeNull();
    expect(scopeLabel(admin!)).toBe('every cluster');
    expect(scopeLabel({ clusters: ['a'] })).toBe('cluster a');
    for (const bad of [null, 'x', {}, { name: 'n', role: 'owner', clusters: '*' }, { name: 'n', role: 'read', clusters: [1] }, { name: '', role: 'read', clusters: '*' }]) {
      expect(parsePrincipal(bad)).toBeNull();
    }
  });

  it('reads the mode from a 401 body and says how to sign in', () => {
    expect(signInNeeded('{"error":"the token is not valid","auth":"tokens"}', 'x')).toEqual({ auth: 'tokens', message: 'the token is not valid' });
    expect(signInNeeded('{"error":"needs a token","auth":"proxy"}', 'x').auth).toBe('proxy');
    // An older gateway's body, or none at all.
    expect(signInNeeded('{"error":"needs a token"}', 'x')).toEqual({ auth: null, message: 'needs a token' });
    expect(signInNeeded('Unauthorized', 'HTTP 401')).toEqual({ auth: null, message: 'HTTP 401' });
    expect(signInHint('proxy')).toMatch(/proxy/);
    expect(signInHint('tokens')).toMatch(/API token/);
    expect(signInHint(null)).toMatch(/API token/);
    expect(signInHint('none')).toMatch(/more rights/);
  });
});
