// The outbound plan (delivery/plan.ts), table by table: every deferral code of SPEC §8 and §4 that
// the plan decides, the order of precedence (DANE > MTA-STS > tlsSettings), and REQUIRETLS.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadPolicyText } from '../../src/config/load.js';
import type { MxFacts } from '../../src/delivery/dane.js';
import type { DnsAnswer, TlsaRecord } from '../../src/delivery/dnssec-resolver.js';
import type { StsPolicy } from '../../src/delivery/mta-sts.js';
import { describePolicies, hopFailureUnder, outboundPolicies, planFailure, planHops, tlsaVerdict, wantsMtaSts, type EnvelopeTls, type HopFacts } from '../../src/delivery/plan.js';
import { hopFailure, type HopFailureKind } from '../../src/delivery/status.js';
import type { Route } from '../../src/policy/outbound.js';
import type { Policy } from '../../src/policy/types.js';
import { baseGateway } from './policy-helpers.js';

const policyWith = (gateway: Record<string, unknown>, outboundConnectors: unknown[] = []): Policy => {
  const r = loadPolicyText(stringify({ gateway: { ...baseGateway, ...gateway }, outboundConnectors }), 't.yaml', { checkFiles: false });
  if (!r.policy) throw new Error(JSON.stringify(r.diagnostics));
  return r.policy;
};
// DANE in effect: a validating resolver on loopback.
const daneOn = policyWith({ dns: { servers: ['127.0.0.1:53'] }, outbound: { smtpDaneMode: 'opportunistic', mtaStsMode: 'opportunistic' } });
const mandatory = policyWith({ dns: { servers: ['127.0.0.1:53'] }, outbound: { smtpDaneMode: 'mandatory' } });
const noDns = policyWith({ outbound: { smtpDaneMode: 'opportunistic', mtaStsMode: 'opportunistic' } });
const withSmartHost = policyWith({ dns: { servers: ['127.0.0.1:53'] } }, [{ name: 'Partner', connectorType: 'partner', recipientDomains: ['partner.test'], smartHosts: ['[192.0.2.9]:25'], tlsSettings: 'certificateValidation' }]);

const mx: Route = { kind: 'mx', domain: 'example.test' };
const plain: EnvelopeTls = { requireTls: false, tlsRequiredNo: false };
const ok = <T extends 'MX' | 'A' | 'AAAA' | 'TLSA'>(records: DnsAnswer<T>['records'], secure = true, rcode = 'NOERROR', extendedErrors: number[] = []): DnsAnswer<T> => ({ rcode, secure, extendedErrors, records });
const tlsa = (usage: number): TlsaRecord => ({ usage, selector: 1, matchingType: 1, data: Buffer.alloc(32) });
const daneFacts = (over: Partial<MxFacts> = {}, t: MxFacts['hosts'][number]['tlsa'] = ok<'TLSA'>([tlsa(3)])): HopFacts => ({
  found: { dane: { domain: 'example.test', mx: ok<'MX'>([{ preference: 10, exchange: 'mx.example.test' }]), hosts: [{ name: 'mx.example.test', a: ok<'A'>(['192.0.2.1']), aaaa: ok<'AAAA'>([]), tlsa: t }], ...over } },
});
const hops = (...names: string[]): HopFacts['found'] => ({ hops: names.map((name, i) => ({ name, address: `192.0.2.${i + 1}`, port: 25 })) });
const sts = (mode: StsPolicy['mode'], mxPatterns = ['mx.example.test']): HopFacts['sts'] => ({ policy: { version: 'STSv1', mode, mx: mxPatterns, maxAge: 86400 } as StsPolicy, id: 'id1' });
const plan = (policy: Policy, facts: HopFacts, env = plain, route: Route = mx) => planHops(outboundPolicies(policy, route, 'example.test', env, () => ''), facts);

describe('outboundPolicies: what may apply, before DNS', () => {
  it.each([
    ['DANE in effect, MTA-STS looked up', daneOn, plain, 'opportunistic', true],
    ['mandatory DANE', mandatory, plain, 'mandatory', true],
    ['no resolver of ours: DANE not in effect (never a reason to defer)', noDns, plain, null, true],
    ['TLS-Required: No sets DANE and MTA-STS aside', daneOn, { requireTls: false, tlsRequiredNo: true }, null, false],
  ] as const)('%s', (_what, policy, env, dane, mtaSts) => {
    const p = outboundPolicies(policy, mx, 'example.test', env, () => '');
    expect(p.dane).toBe(dane);
    expect(p.mtaSts).toBe(mtaSts);
  });
  it('smart hosts keep their tlsSettings: no DANE, no MTA-STS, no label', () => {
    const c = withSmartHost.outboundConnectors[0]!;
    const route: Route = { kind: 'connector', connector: c, matchedBy: 'exact' };
    const p = outboundPolicies(withSmartHost, route, 'partner.test', plain, () => '');
    expect(p).toMatchObject({ dane: null, mtaSts: false, mxRoute: false, tls: { settings: 'certificateValidation' } });
    const pl = planHops(p, { found: hops('192.0.2.9') });
    expect(pl.ok && pl.hops[0]).toMatchObject({ requirement: { settings: 'certificateValidation' } });
    expect(pl.ok && pl.hops[0]!.label).toBeUndefined();
    expect(describePolicies(p)[0]).toContain('smart hosts');
  });
  it('the DANE resolver missing (not configured for this caller): DANE not in effect', () => {
    expect(outboundPolicies(daneOn, mx, 'example.test', plain, () => '', false).dane).toBeNull();
  });
});

describe('planHops: precedence DANE > MTA-STS > tlsSettings', () => {
  it('DANE-protected hops: TLSA must match; MTA-STS is not looked up', () => {
    const p = plan(daneOn, daneFacts());
    expect(p.ok && p.hops[0]).toMatchObject({ label: 'dane', requirement: { dane: { names: ['mx.example.test', 'example.test'] } } });
    expect(p.ok && wantsMtaSts(outboundPolicies(daneOn, mx, 'example.test', plain, () => ''), p.hops)).toBe(false);
  });
  it('secure TLSA, none usable: encryption required (encryptionOnly), labelled dane-encrypt', () => {
    const p = plan(daneOn, daneFacts({}, ok<'TLSA'>([tlsa(1)])));
    expect(p.ok && p.hops[0]).toMatchObject({ label: 'dane-encrypt', requirement: { settings: 'encryptionOnly' } });
  });
  it('no DANE for the domain: MTA-STS enforce applies (PKIX for the MX name)', () => {
    const p = plan(daneOn, { ...daneFacts({}, null), sts: sts('enforce') });
    expect(p.ok && p.hops[0]).toMatchObject({ label: 'mta-sts-enforce', requirement: { sts: 'enforce', host: 'mx.example.test' } });
  });
  it('MTA-STS testing: checked and reported, not enforced', () => {
    const p = plan(noDns, { found: hops('mx.example.test'), sts: sts('testing') });
    expect(p.ok && p.hops[0]).toMatchObject({ label: 'mta-sts-testing', requirement: { sts: 'testing', stsHost: 'mx.example.test', settings: null } });
  });
  it('neither: opportunistic TLS (tlsSettings), or dane-none when DANE is in effect', () => {
    expect(plan(noDns, { found: hops('mx.example.test') })).toMatchObject({ ok: true, hops: [{ label: 'tlsSettings', requirement: { settings: null } }] });
    expect(plan(daneOn, daneFacts({}, null))).toMatchObject({ ok: true, hops: [{ label: 'dane-none' }] });
  });
  it('REQUIRETLS: every hop must verify its name (PKIX), DANE hops their TLSA', () => {
    const req = { requireTls: true, tlsRequiredNo: false };
    expect(plan(noDns, { found: hops('mx.example.test') }, req)).toMatchObject({ ok: true, hops: [{ requirement: { host: 'mx.example.test' } }] });
    const d = plan(daneOn, daneFacts(), req);
    expect(d.ok && d.hops[0]!.requirement.host).toBeUndefined();
    expect(d.ok && d.hops[0]!.requirement.dane).toBeDefined();
  });
});

// Every SPEC §8 (and §4) deferral code the plan decides, row by row.
describe('the deferral codes', () => {
  const daneHop = () => {
    const p = plan(daneOn, daneFacts());
    if (!p.ok) throw new Error('no plan');
    return p.hops[0]!.requirement;
  };
  const stsHop = () => {
    const p = plan(noDns, { found: hops('mx.example.test'), sts: sts('enforce') });
    if (!p.ok) throw new Error('no plan');
    return p.hops[0]!.requirement;
  };
  const tlsHop = () => {
    const p = plan(noDns, { found: hops('mx.example.test') });
    if (!p.ok) throw new Error('no plan');
    return p.hops[0]!.requirement;
  };
  const chain = { problem: 'chain' as const, reason: 'CERT_HAS_EXPIRED' };
  const name = { problem: 'name' as const, reason: 'ERR_TLS_CERT_ALTNAME_INVALID' };
  it.each<[string, () => string]>([
    ['4.7.321', () => hopFailureUnder(daneHop(), hopFailure('tls-unavailable', 'no STARTTLS')).code], // DANE: no STARTTLS
    ['4.7.321', () => hopFailureUnder(stsHop(), hopFailure('tls-unavailable', 'no STARTTLS')).code], // MTA-STS enforce: no STARTTLS
    ['4.7.322', () => hopFailureUnder(stsHop(), hopFailure('certificate', 'expired', chain)).code], // MTA-STS enforce: expired
    ['4.7.323', () => tlsaVerdict({ ok: false, reason: 'no TLSA record matches' }, 'mx[192.0.2.1]:25')!.code], // DANE: no TLSA matches
    ['4.7.324', () => (plan(daneOn, daneFacts({ mx: ok<'MX'>([], false, 'SERVFAIL', [6]) })) as { outcome: { code: string } }).outcome.code], // bogus DNSSEC
    ['4.7.324', () => (plan(mandatory, daneFacts({}, null)) as { outcome: { code: string } }).outcome.code], // mandatory, no secure TLSA
    ['4.7.325', () => hopFailureUnder(stsHop(), hopFailure('certificate', 'wrong name', name)).code], // MTA-STS enforce: name
    ['4.7.325', () => (plan(noDns, { found: hops('other.example.test'), sts: sts('enforce') }) as { outcome: { code: string } }).outcome.code], // MX not listed
    ['4.4.317', () => hopFailureUnder(tlsHop(), hopFailure('tls-unavailable', 'no STARTTLS')).code], // tlsSettings: TLS required, not offered
    ['4.7.320', () => hopFailureUnder(tlsHop(), hopFailure('certificate', 'bad chain', chain)).code], // tlsSettings: chain refused
    ['4.4.312', () => (plan(noDns, { found: { error: { permanent: false, status: '4.4.312', detail: 'SERVFAIL' } } }) as { outcome: { code: string } }).outcome.code],
    ['5.4.310', () => (plan(noDns, { found: { error: { permanent: true, status: '5.4.310', detail: 'NXDOMAIN' } } }) as { outcome: { code: string } }).outcome.code],
  ])('%s', (code, decide) => expect(decide()).toBe(code));

  it('each row comes with its label: the MX-not-listed deferral is mta-sts-enforce, a DANE failure dane', () => {
    expect(plan(noDns, { found: hops('other.example.test'), sts: sts('enforce') })).toMatchObject({ ok: false, outcome: { status: 'deferred', security: 'mta-sts-enforce' } });
    expect(plan(mandatory, daneFacts({}, null))).toMatchObject({ ok: false, outcome: { status: 'deferred', security: 'dane' } });
  });
  it('a permanent DNS answer fails the recipient (5.4.310), a temporary one defers it', () => {
    expect(plan(noDns, { found: { error: { permanent: true, status: '5.4.310', detail: 'x' } } })).toMatchObject({ outcome: { status: 'failed' } });
    expect(plan(noDns, { found: { error: { permanent: false, status: '4.4.312', detail: 'x' } } })).toMatchObject({ outcome: { status: 'deferred' } });
  });
});

describe('planFailure: what stands when every hop failed', () => {
  const p = (requireTls: boolean) => outboundPolicies(noDns, mx, 'example.test', { requireTls, tlsRequiredNo: false }, () => '');
  const f = (kind: HopFailureKind) => hopFailure(kind, kind);
  it.each<[boolean, HopFailureKind[], string, string]>([
    [true, ['requiretls'], 'failed', '5.7.30'],
    [true, ['certificate', 'tls-unavailable'], 'failed', '5.7.30'],
    [true, ['certificate', 'refused'], 'deferred', '4.4.316'], // one hop was unreachable: it may meet REQUIRETLS later
    [false, ['certificate'], 'deferred', '4.7.320'],
    [false, ['refused', 'timeout'], 'deferred', '4.4.315'], // the last failure stands
    [true, [], 'deferred', '4.4.312'], // no hop at all
  ])('REQUIRETLS %s, failures %j → %s %s', (requireTls, kinds, status, code) => {
    expect(planFailure(p(requireTls), kinds.map(f))).toMatchObject({ status, code });
  });
  it('a deferral by failed hops marks the destination unreachable; a 5.7.30 does not', () => {
    expect(planFailure(p(false), [f('refused')]).unreachable).toBe(true);
    expect(planFailure(p(true), [f('requiretls')]).unreachable).toBeUndefined();
  });
});
