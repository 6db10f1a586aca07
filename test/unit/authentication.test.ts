// SPEC §11's decisions as a table: the DMARC verdict (policy/authentication.ts) and what is signed
// on the way out (policy/signing.ts), on plain facts.
import { describe, expect, it } from 'vitest';
import { arcRescue, authVerdict, claimsOurAuthservId, dmarcResult, type AuthFacts, type DmarcFacts } from '../../src/policy/authentication.js';
import { signingPlan } from '../../src/policy/signing.js';
import type { Policy } from '../../src/policy/types.js';

const dmarc = (d: Partial<DmarcFacts>): DmarcFacts => ({ domain: 'sender.test', result: 'fail', policy: 'reject', pct: 100, passedBy: { spf: false, dkim: false, unsignedBytes: 0 }, unevaluable: null, ...d });
const facts = (d: Partial<DmarcFacts>, arc: Partial<AuthFacts['arc']> = {}): AuthFacts => ({
  spf: { result: 'fail', domain: 'sender.test' },
  dkim: [],
  arc: { result: 'none', sealer: null, sealerSawPass: false, ...arc },
  dmarc: dmarc(d),
});

describe('authVerdict', () => {
  it.each([
    ['pass', 'reject', 'accept'],
    ['none', null, 'accept'],
    ['temperror', 'reject', 'accept'], // never refused for a DNS failure
    ['permerror', null, 'accept'],
    ['fail', 'none', 'accept'],
    ['fail', 'quarantine', 'quarantine'],
    ['fail', 'reject', 'reject'],
  ] as const)('dmarc=%s with p=%s: %s', (result, policy, action) => {
    expect(authVerdict('enforce', [], facts({ result, policy }), 0).action).toBe(action);
  });
  it('the reply of a reject names the domain (550 5.7.509)', () => {
    const v = authVerdict('enforce', [], facts({}), 0);
    expect(v).toMatchObject({ action: 'reject', domain: 'sender.test', reply: { code: 550, enhanced: '5.7.509', text: 'Access denied, sending domain sender.test does not pass DMARC verification and has a DMARC policy of reject' } });
  });
  it('audit and off refuse nothing', () => {
    expect(authVerdict('audit', [], facts({}), 0)).toMatchObject({ action: 'accept', why: expect.stringContaining('audit') });
    expect(authVerdict('off', [], facts({}), 0).action).toBe('accept');
  });
  it('pct: a message outside the percentage gets the next policy down', () => {
    expect(authVerdict('enforce', [], facts({ pct: 50 }), 49.9).action).toBe('reject');
    expect(authVerdict('enforce', [], facts({ pct: 50 }), 50).action).toBe('quarantine');
    expect(authVerdict('enforce', [], facts({ pct: 0, policy: 'quarantine' }), 0).action).toBe('accept');
  });
  it('an intact ARC chain sealed by a trusted sealer that saw a pass rescues a failure; an untrusted or failed one does not', () => {
    const trusted = { result: 'pass' as const, sealer: 'lists.test', sealerSawPass: true };
    expect(authVerdict('enforce', ['lists.test'], facts({}, trusted), 0).action).toBe('accept');
    expect(authVerdict('enforce', ['other.test'], facts({}, trusted), 0).action).toBe('reject');
    expect(authVerdict('enforce', ['lists.test'], facts({}, { ...trusted, result: 'fail' }), 0).action).toBe('reject');
    expect(authVerdict('enforce', ['lists.test'], facts({}, { ...trusted, sealerSawPass: false }), 0).action).toBe('reject');
    expect(arcRescue(['lists.test'], trusted)).toMatch(/lists\.test/);
  });
  it('two From fields: refused when a From domain publishes p=reject; accepted when none publishes a policy', () => {
    const two = { reason: 'multiple-from-fields', policies: [{ domain: 'sender.test', policy: 'reject' as const }] };
    expect(authVerdict('enforce', [], facts({ result: 'permerror', domain: null, unevaluable: two }), 99)).toMatchObject({ action: 'reject', domain: 'sender.test' });
    expect(authVerdict('enforce', [], facts({ result: 'permerror', domain: null, unevaluable: { reason: 'no-author-domain', policies: [] } }), 0).action).toBe('accept');
  });
  it('a pass resting only on a DKIM signature whose l= left body bytes unsigned is a fail', () => {
    expect(dmarcResult(dmarc({ result: 'pass', passedBy: { spf: false, dkim: true, unsignedBytes: 40 } }))).toBe('fail');
    expect(dmarcResult(dmarc({ result: 'pass', passedBy: { spf: true, dkim: true, unsignedBytes: 40 } }))).toBe('pass');
    expect(dmarcResult(dmarc({ result: 'pass', passedBy: { spf: false, dkim: true, unsignedBytes: 0 } }))).toBe('pass');
    expect(authVerdict('enforce', [], facts({ result: 'pass', passedBy: { spf: false, dkim: true, unsignedBytes: 1 } }), 0).action).toBe('reject');
  });
});

describe('claimsOurAuthservId', () => {
  it.each([
    ['Authentication-Results', 'mx.contoso.com; dmarc=pass', true],
    ['authentication-results', 'MX.Contoso.com ; spf=pass', true],
    ['Authentication-Results', '(comment) mx.contoso.com; dkim=pass', true],
    ['Authentication-Results', '"mx.contoso.com"; dkim=pass', true],
    ['ARC-Authentication-Results', 'i=1; mx.contoso.com; dmarc=pass', true],
    ['Authentication-Results', 'mx.contoso.com.evil.example; dmarc=pass', false],
    ['Authentication-Results', 'other.example; dmarc=pass', false],
    ['Received', 'mx.contoso.com; x', false],
  ] as const)('%s: %s → %s', (name, value, expected) => {
    expect(claimsOurAuthservId(name, value, 'mx.contoso.com')).toBe(expected);
  });
});

describe('signingPlan', () => {
  const policy = {
    gateway: { authentication: { authservId: 'mx', dmarc: 'enforce', arcTrustedSealers: [], arcSeal: { domain: 'contoso.com', selector: 'arc', privateKey: '/k' } } },
    dkimSigningConfigs: [
      { domainName: 'contoso.com', selector: 'rsa', privateKey: '/r', enabled: true },
      { domainName: 'contoso.com', selector: 'ed', privateKey: '/e', enabled: true },
      { domainName: 'contoso.com', selector: 'old', privateKey: '/o', enabled: false },
      { domainName: 'fabrikam.com', selector: 'f', privateKey: '/f', enabled: true },
    ],
  } as unknown as Policy;
  const partner = { kind: 'connector', connector: { connectorType: 'partner' } } as never;
  const onPrem = { kind: 'connector', connector: { connectorType: 'onPremises' } } as never;
  it('every enabled key of the From domain signs toward a connector that is not onPremises', () => {
    expect(signingPlan(policy, 'Contoso.com', partner, false).dkim.map((c) => c.selector)).toEqual(['rsa', 'ed']);
    expect(signingPlan(policy, 'contoso.com', onPrem, false).dkim).toEqual([]);
    expect(signingPlan(policy, 'sub.contoso.com', partner, false).dkim).toEqual([]);
    expect(signingPlan(policy, null, partner, false).dkim).toEqual([]);
  });
  it('the ARC seal goes on what was authenticated at the edge, whatever the route', () => {
    expect(signingPlan(policy, 'example.org', onPrem, true).arcSeal).toMatchObject({ domain: 'contoso.com' });
    expect(signingPlan(policy, 'contoso.com', partner, false).arcSeal).toBeNull();
  });
});
