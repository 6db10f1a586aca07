// MTA-STS's pure parts (delivery/mta-sts.ts) and its cache, with a fake DNS and fetch.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mxAllowed, parseStsPolicy, parseStsRecord, StsPolicies, type StsEvent } from '../../src/delivery/mta-sts.js';
import { tmpDir } from '../helpers/gateway.js';

describe('parseStsRecord', () => {
  it('one STSv1 record with an id', () => {
    expect(parseStsRecord(['v=STSv1; id=20261124T01;'])).toEqual({ id: '20261124T01' });
    expect(parseStsRecord(['google-site-verification=x', 'v=STSv1;id=abc'])).toEqual({ id: 'abc' });
    expect(parseStsRecord(['v=spf1 -all'])).toBeNull();
    expect(parseStsRecord([])).toBeNull();
  });
  it('junk is an error, not a policy', () => {
    expect(parseStsRecord(['v=STSv1; id=@@@'])).toMatchObject({ error: expect.stringMatching(/no valid id/) });
    expect(parseStsRecord(['v=STSv1;'])).toMatchObject({ error: expect.any(String) });
    expect(parseStsRecord(['v=STSv1; id=a', 'v=STSv1; id=b'])).toMatchObject({ error: 'more than one STSv1 TXT record' });
    expect(parseStsRecord(['v=STSv1; id=' + 'a'.repeat(33)])).toMatchObject({ error: expect.any(String) });
  });
});

describe('parseStsPolicy', () => {
  it('reads CRLF or LF, several mx lines, lower-cases', () => {
    expect(parseStsPolicy('version: STSv1\r\nmode: enforce\r\nmx: MX1.Example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n')).toEqual({ mode: 'enforce', mx: ['mx1.example.com', '*.example.net'], maxAge: 604800 });
    expect(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 0\n')).toEqual({ mode: 'none', mx: [], maxAge: 0 });
  });
  it('refuses what RFC 8461 §3.2 does not allow', () => {
    for (const bad of [
      'mode: enforce\nmx: a.b\nmax_age: 1\n',
      'version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n',
      'version: STSv1\nmode: bogus\nmx: a.b\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 99999999999\n',
      'version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n',
      'version: STSv1\nmode: enforce\nmx: a b c\nmax_age: 1\n',
      '<html>not a policy</html>',
    ]) expect(parseStsPolicy(bad), bad).toHaveProperty('error');
  });
});

describe('mxAllowed', () => {
  const p = { mode: 'enforce' as const, mx: ['mail.example.com', '*.example.net'], maxAge: 1 };
  it('exact names, and a wildcard for one left-most label only', () => {
    expect(mxAllowed(p, 'Mail.Example.com.')).toBe(true);
    expect(mxAllowed(p, 'mx1.example.net')).toBe(true);
    expect(mxAllowed(p, 'a.mx1.example.net')).toBe(false);
    expect(mxAllowed(p, 'example.net')).toBe(false);
    expect(mxAllowed(p, 'evil-mail.example.com')).toBe(false);
  });
});

describe('StsPolicies (the cache)', () => {
  const policy = 'version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 3600\n';
  function cache(dir: string, txt: () => string[] | Error, fetch: () => Promise<string>) {
    const events: StsEvent[] = [];
    let fetches = 0;
    const c = new StsPolicies(dir, { txt: async () => { const t = txt(); if (t instanceof Error) throw t; return t; }, lookup: () => {} }, (e) => events.push(e), () => (fetches++, fetch()));
    return { c, events, fetches: () => fetches };
  }
  it('fetches once per id, keeps the policy for max_age on disk, survives a failed refetch and a DNS failure', async () => {
    const dir = tmpDir('sts-cache');
    let id = 'a';
    let dnsDown = false;
    let httpsDown = false;
    const mk = () => cache(dir, () => (dnsDown ? new Error('SERVFAIL') : [`v=STSv1; id=${id}`]), async () => { if (httpsDown) throw new Error('ECONNREFUSED'); return policy; });
    const one = mk();
    const t0 = Date.parse('2026-11-24T00:00:00Z');
    expect(await one.c.forDomain('example.com', t0)).toMatchObject({ source: 'fetched', id: 'a' });
    expect(await one.c.forDomain('example.com', t0 + 1000)).toMatchObject({ source: 'cached' });
    expect(one.fetches()).toBe(1);
    expect(fs.existsSync(path.join(dir, 'example.com.json'))).toBe(true);
    // A new process reads the file; HTTPS down and a new id: the cached policy stays in force.
    const two = mk();
    httpsDown = true;
    id = 'b';
    expect(await two.c.forDomain('example.com', t0 + 2000)).toMatchObject({ source: 'cached', id: 'a', policy: { mode: 'enforce' } });
    expect(two.events.map((e) => e.result)).toEqual(['refetch-failed']);
    dnsDown = true;
    expect(await two.c.forDomain('example.com', t0 + 3000)).toMatchObject({ source: 'cached' });
    // After max_age, with nothing reachable, there is no policy.
    expect(await two.c.forDomain('example.com', t0 + 3_700_000)).toMatchObject({ policy: null });
    // Back: the new id is fetched.
    dnsDown = false;
    httpsDown = false;
    expect(await two.c.forDomain('example.com', t0 + 3_800_000)).toMatchObject({ source: 'fetched', id: 'b' });
  });
});
