// SPEC §11 sender authentication on the wire, against an independent implementation: dkimpy
// (Debian python3-dkim) signs and ARC-seals what the gateway verifies, and verifies the DKIM
// signatures and ARC seals the gateway adds. DNS is real: nsd serves the zones, unbound resolves.
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki } from '../helpers/pki.js';
import { startGateway, testGateway, tmpDir, writePolicy, runCli, type RunningGateway } from '../helpers/gateway.js';
import { startDnssec, type Dnssec } from '../helpers/dnssec.js';
import { startSink, type Sink, type SunkMessage } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/raw.js';
import { until } from '../helpers/wait.js';

const DKIMPY = path.resolve(import.meta.dirname, '../helpers/dkimpy.py');
const AUTHSERV = 'mx.contoso.test';

let dir: string;
let dns: Dnssec;
let gw: RunningGateway;
let onprem: Sink;
let partner: Sink;
/** name → TXT text, for dkimpy's dnsfunc. */
const records: Record<string, string> = {};
let recordsFile: string;
let policyFile: string;
const keyFiles: Record<string, string> = {};

/** A key pair: the PEM file (PKCS#8 for the gateway, PKCS#1 for dkimpy's RSA) and its DKIM key record. */
function dkimKey(name: string, type: 'rsa' | 'ed25519', bits = 2048, pkcs1 = false): { file: string; record: string } {
  const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: bits }) : generateKeyPairSync('ed25519');
  const file = path.join(dir, `${name}.key`);
  fs.writeFileSync(file, privateKey.export({ type: pkcs1 && type === 'rsa' ? 'pkcs1' : 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const p = type === 'rsa' ? spki.toString('base64') : spki.subarray(spki.length - 32).toString('base64');
  return { file, record: `v=DKIM1; k=${type}; p=${p}` };
}

/** A TXT record line for a zone file: long texts split into strings of at most 255 characters. */
const txt = (owner: string, text: string): string => `${owner} 60 IN TXT ${(text.match(/.{1,250}/g) ?? ['']).map((s) => `"${s}"`).join(' ')}`;

function dkimpy(args: string[], input: string | Buffer): string {
  return execFileSync('/usr/bin/python3', [DKIMPY, ...args], { input }).toString('latin1');
}

const sealed = (m: SunkMessage): { cv: string; comment: string } => JSON.parse(dkimpy(['arc-verify', recordsFile], m.raw)) as { cv: string; comment: string };

let seq = 0;
/** A message as a sender writes it (CRLF), with a unique Subject to find it by. */
function message(from: string, subject: string, extra = ''): string {
  seq++;
  return `From: ${from}\r\nTo: user@contoso.com\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m${seq}.${Date.now()}@test>\r\n${extra}\r\nHello from ${from}.\r\nSecond line.\r\n`;
}

/** One SMTP transaction from `ip`; the final reply. */
async function send(ip: string, mailFrom: string, rcpt: string, raw: string): Promise<string> {
  const { c } = await RawSmtp.connect(gw.port, { localAddress: ip });
  try {
    await c.cmd('EHLO client.test');
    const mail = await c.cmd(`MAIL FROM:<${mailFrom}>`);
    if (!mail.startsWith('250')) return mail;
    const r = await c.cmd(`RCPT TO:<${rcpt}>`);
    if (!r.startsWith('250')) return r;
    return await c.data(raw.replace(/\r\n\./g, '\r\n..') + '.\r\n');
  } finally {
    c.close();
  }
}

async function sunk(sink: Sink, subject: string): Promise<SunkMessage> {
  await until(() => sink.messages.some((m) => m.raw.includes(`Subject: ${subject}\r\n`)), 15_000, `"${subject}" at the sink`);
  return sink.messages.find((m) => m.raw.includes(`Subject: ${subject}\r\n`))!;
}

/** Our Authentication-Results (unfolded). */
function ourResults(raw: string): string[] {
  const head = raw.slice(0, raw.indexOf('\r\n\r\n') + 2).replace(/\r\n[ \t]+/g, ' ');
  return head.split('\r\n').filter((l) => new RegExp(`^Authentication-Results: ${AUTHSERV.replace(/\./g, '\\.')};`, 'i').test(l));
}

beforeAll(async () => {
  dir = tmpDir('authentication');
  const pki = makePki(path.join(dir, 'pki'));
  const sender = dkimKey('sender-s1', 'rsa', 2048, true);
  const list = dkimKey('lists-arc', 'rsa', 2048, true);
  const otherList = dkimKey('other-list-arc', 'rsa', 2048, true);
  const ourRsa = dkimKey('contoso-rsa', 'rsa');
  const ourEd = dkimKey('contoso-ed', 'ed25519');
  const ourArc = dkimKey('contoso-arc', 'rsa');
  Object.assign(keyFiles, { sender: sender.file, list: list.file, otherList: otherList.file, rsa: ourRsa.file, ed: ourEd.file, arc: ourArc.file });
  Object.assign(records, {
    's1._domainkey.sender.test': sender.record,
    'arc._domainkey.lists.test': list.record,
    'arc._domainkey.other-list.test': otherList.record,
    'rsa2026._domainkey.contoso.com': ourRsa.record,
    'ed2026._domainkey.contoso.com': ourEd.record,
    'arc2026._domainkey.contoso.com': ourArc.record,
  });
  recordsFile = path.join(dir, 'records.json');
  fs.writeFileSync(recordsFile, JSON.stringify(records));
  const includes = Array.from({ length: 11 }, (_, i) => `a${i + 1}`);
  dns = await startDnssec(path.join(dir, 'dns'), [
    {
      name: 'sender.test',
      kind: 'unsigned',
      records: [
        txt('@', 'v=spf1 ip4:127.0.0.3 -all'),
        txt('_dmarc', 'v=DMARC1; p=reject'),
        txt('s1._domainkey', sender.record),
        // A subdomain whose servers do not answer: every lookup under it fails (temperror).
        'dead 60 IN NS ns.dead',
        'ns.dead 60 IN A 127.0.0.99',
      ],
    },
    { name: 'quarantine.test', kind: 'unsigned', records: [txt('@', 'v=spf1 ip4:127.0.0.3 -all'), txt('_dmarc', 'v=DMARC1; p=quarantine')] },
    { name: 'lists.test', kind: 'unsigned', records: [txt('@', 'v=spf1 ip4:127.0.0.4 -all'), txt('arc._domainkey', list.record)] },
    { name: 'other-list.test', kind: 'unsigned', records: [txt('@', 'v=spf1 ip4:127.0.0.4 -all'), txt('arc._domainkey', otherList.record)] },
    { name: 'example.test', kind: 'unsigned', records: [] },
    { name: 'garbage.test', kind: 'unsigned', records: [txt('@', 'v=spf1 ip4:127.0.0.3 -all'), txt('_dmarc', 'v=DMARC1; p=??; pct=abc;;; ===')] },
    {
      name: 'spf.test',
      kind: 'unsigned',
      records: [
        txt('many', `v=spf1 ${includes.map((n) => `include:${n}.spf.test`).join(' ')} -all`),
        ...includes.map((n) => txt(n, 'v=spf1 -all')),
        txt('loop', 'v=spf1 include:loop.spf.test -all'),
      ],
    },
  ]);
  onprem = await startSink({ noStartTls: true, host: '127.0.0.1' });
  partner = await startSink({ noStartTls: true, host: '127.0.0.1' });
  policyFile = writePolicy(dir, {
      gateway: testGateway(dir, pki, {
        dns: { servers: [dns.server] },
        rejectDirectSend: true,
        limits: { maxMessagesPerMinutePerIp: 100000 },
        authentication: {
          authservId: AUTHSERV,
          dmarc: 'enforce',
          arcTrustedSealers: ['lists.test'],
          arcSeal: { domain: 'contoso.com', selector: 'arc2026', privateKey: ourArc.file },
        },
      }),
      acceptedDomains: [{ domain: 'contoso.com' }],
      inboundConnectors: [{ name: 'OnPrem', connectorType: 'onPremises', senderIPAddresses: ['127.0.0.10'] }],
      outboundConnectors: [
        { name: 'On-prem', connectorType: 'onPremises', allAcceptedDomains: true, cloudServicesMailEnabled: true, smartHosts: [`[127.0.0.1]:${onprem.port}`] },
        { name: 'Partner', connectorType: 'partner', recipientDomains: ['partner.example'], smartHosts: [`[127.0.0.1]:${partner.port}`] },
      ],
      dkimSigningConfigs: [
        { domainName: 'contoso.com', selector: 'rsa2026', privateKey: ourRsa.file },
        { domainName: 'contoso.com', selector: 'ed2026', privateKey: ourEd.file },
      ],
    });
  gw = await startGateway(policyFile);
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await onprem?.close();
  await partner?.close();
  await dns?.stop();
});

describe('inbound: SPF, DKIM and DMARC of mail from outside', () => {
  it('a message signed by its domain (dkimpy) from an SPF-listed server passes everything; one Authentication-Results of ours', async () => {
    const signed = dkimpy(['sign', 'sender.test', 's1', keyFiles.sender!], message('alice@sender.test', 'signed'));
    expect(await send('127.0.0.3', 'alice@sender.test', 'user@contoso.com', signed)).toMatch(/^250 2\.6\.0 /);
    const m = await sunk(onprem, 'signed');
    const ar = ourResults(m.raw);
    expect(ar).toHaveLength(1);
    expect(ar[0]).toMatch(/dkim=pass [^;]*header\.i=@sender\.test/);
    expect(ar[0]).toMatch(/spf=pass /);
    expect(ar[0]).toMatch(/dmarc=pass /);
    const e = await gw.logged('authentication', (x) => (x.dmarc as { domain?: string } | undefined)?.domain === 'sender.test' && x.action === 'accept');
    expect(e).toMatchObject({ spf: { result: 'pass' }, dmarc: { result: 'pass', policy: 'reject' } });
  });

  it('p=reject and nothing authenticates the From: 550 5.7.509 at end of DATA, nothing delivered', async () => {
    const reply = await send('127.0.0.5', 'alice@sender.test', 'user@contoso.com', message('alice@sender.test', 'forged'));
    expect(reply).toBe('550 5.7.509 Access denied, sending domain sender.test does not pass DMARC verification and has a DMARC policy of reject');
    expect(await gw.logged('refusal', (x) => x.rule === 'dmarc')).toMatchObject({ domain: 'sender.test' });
    // A later message arrives; the forged one never does.
    await send('127.0.0.5', 'x@example.test', 'user@contoso.com', message('x@example.test', 'after forged'));
    await sunk(onprem, 'after forged');
    expect(onprem.messages.some((m) => m.raw.includes('Subject: forged\r\n'))).toBe(false);
  });

  it('p=quarantine: accepted, and marked SCL 5 toward on-premises (cloudServicesMailEnabled keeps the header)', async () => {
    expect(await send('127.0.0.5', 'bob@quarantine.test', 'user@contoso.com', message('bob@quarantine.test', 'quarantined'))).toMatch(/^250 2\.6\.0 /);
    const m = await sunk(onprem, 'quarantined');
    expect(m.raw).toMatch(/^X-MS-Exchange-Organization-SCL: 5\r$/m);
    expect(ourResults(m.raw)[0]).toMatch(/dmarc=fail /);
  });

  it('an Authentication-Results claiming our authserv-id from outside is removed; another server\'s is kept', async () => {
    const forged = message('x@example.test', 'forged results', `Authentication-Results: ${AUTHSERV}; dkim=pass header.d=contoso.com; dmarc=pass header.from=contoso.com\r\nAuthentication-Results: other.test; spf=pass\r\n`);
    expect(await send('127.0.0.5', 'x@example.test', 'user@contoso.com', forged)).toMatch(/^250 2\.6\.0 /);
    const m = await sunk(onprem, 'forged results');
    const ar = ourResults(m.raw);
    expect(ar).toHaveLength(1);
    expect(ar[0]).not.toMatch(/dmarc=pass/);
    expect(m.raw).toContain('Authentication-Results: other.test; spf=pass\r\n');
  });

  it('two From fields: DMARC cannot pass, refused where a From domain publishes p=reject', async () => {
    const twoFroms = message('alice@sender.test', 'two froms', 'From: someone@example.test\r\n');
    expect(await send('127.0.0.3', 'alice@sender.test', 'user@contoso.com', twoFroms)).toMatch(/^550 5\.7\.509 Access denied, sending domain sender\.test /);
  });

  it('a From without a domain: accepted, recorded as dmarc=permerror (never a pass)', async () => {
    expect(await send('127.0.0.5', 'x@example.test', 'user@contoso.com', message('undisclosed-recipients', 'no domain'))).toMatch(/^250 2\.6\.0 /);
    expect(ourResults((await sunk(onprem, 'no domain')).raw)[0]).toMatch(/dmarc=permerror/);
  });

  it('DNS that does not answer: temperror, the message accepted, nothing recorded as a pass', async () => {
    const reply = await send('127.0.0.5', 'carol@dead.sender.test', 'user@contoso.com', message('carol@dead.sender.test', 'dns down'));
    expect(reply).toMatch(/^250 2\.6\.0 /);
    const ar = ourResults((await sunk(onprem, 'dns down')).raw)[0]!;
    expect(ar).toMatch(/spf=temperror/);
    expect(ar).not.toMatch(/=pass/);
  });

  it('SPF with 11 includes, and an include loop: permerror (RFC 7208 §4.6.4), accepted', async () => {
    for (const d of ['many', 'loop']) {
      expect(await send('127.0.0.5', `x@${d}.spf.test`, 'user@contoso.com', message(`x@${d}.spf.test`, `spf ${d}`))).toMatch(/^250 2\.6\.0 /);
      expect(ourResults((await sunk(onprem, `spf ${d}`)).raw)[0]).toMatch(/spf=permerror/);
    }
  });

  it('a DMARC record of garbage is no policy: accepted, not a pass', async () => {
    expect(await send('127.0.0.5', 'x@garbage.test', 'user@contoso.com', message('x@garbage.test', 'garbage dmarc'))).toMatch(/^250 2\.6\.0 /);
    expect(ourResults((await sunk(onprem, 'garbage dmarc')).raw)[0]).not.toMatch(/dmarc=pass/);
  });

  it('malformed DKIM-Signature tags and a signature whose key is missing: not a pass, no crash', async () => {
    const bad = message('x@example.test', 'bad signature', '');
    const malformed = `DKIM-Signature: v=1; a=rsa-sha256; d=; s=;; b=!!!notbase64\r\n${bad}`;
    expect(await send('127.0.0.5', 'x@example.test', 'user@contoso.com', malformed)).toMatch(/^250 2\.6\.0 /);
    expect(ourResults((await sunk(onprem, 'bad signature')).raw)[0]).not.toMatch(/dkim=pass/);
    const noKey = dkimpy(['sign', 'sender.test', 'nokey', keyFiles.sender!], message('alice@sender.test', 'missing key'));
    expect(await send('127.0.0.5', 'alice@sender.test', 'user@contoso.com', noKey)).toMatch(/^550 5\.7\.509 /); // the signature cannot save it
  });

  it('an l= signature with content appended after the signed body is not a pass: refused under p=reject', async () => {
    const signed = dkimpy(['sign', 'sender.test', 's1', keyFiles.sender!, '--length'], message('alice@sender.test', 'appended'));
    const tampered = `${signed}Click here: http://evil.example/\r\n`;
    expect(await send('127.0.0.5', 'alice@sender.test', 'user@contoso.com', tampered)).toMatch(/^550 5\.7\.509 /);
    expect(await gw.logged('authentication', (x) => (x.why as string | undefined)?.includes('DMARC fails for sender.test') === true && (x.dkim as Array<{ result: string }>).some((d) => d.result === 'pass'))).toBeDefined();
    // The same signature without the appended text is a pass.
    expect(await send('127.0.0.5', 'alice@sender.test', 'user@contoso.com', signed)).toMatch(/^250 2\.6\.0 /);
  });
});

describe('ARC: forwarders and mailing lists', () => {
  /** A list that rewrites the subject (breaking the author's signature) and ARC-seals (dkimpy), from 127.0.0.4. */
  function throughList(listDomain: string, keyFile: string, subject: string): string {
    const original = dkimpy(['sign', 'sender.test', 's1', keyFiles.sender!], message('alice@sender.test', subject));
    const rewritten = original.replace(`Subject: ${subject}\r\n`, `Subject: [list] ${subject}\r\n`);
    const withResults = `Authentication-Results: ${listDomain}; dkim=pass header.d=sender.test; spf=pass smtp.mailfrom=sender.test; dmarc=pass header.from=sender.test\r\n${rewritten}`;
    return dkimpy(['arc-sign', listDomain, 'arc', keyFile, listDomain], withResults);
  }

  it('a DMARC failure sealed by a trusted sealer (lists.test) that saw a pass is delivered, and our seal continues the chain', async () => {
    const raw = throughList('lists.test', keyFiles.list!, 'via trusted list');
    expect(await send('127.0.0.4', 'list-bounces@lists.test', 'user@contoso.com', raw)).toMatch(/^250 2\.6\.0 /);
    const m = await sunk(onprem, '[list] via trusted list');
    expect(ourResults(m.raw)[0]).toMatch(/arc=pass/);
    expect(ourResults(m.raw)[0]).toMatch(/dmarc=fail/);
    expect(m.raw).toMatch(/^ARC-Seal: i=2; /m);
    expect(sealed(m)).toMatchObject({ cv: 'pass' });
  });

  it('the same through a list that is not a trusted sealer: 550 5.7.509', async () => {
    const raw = throughList('other-list.test', keyFiles.otherList!, 'via other list');
    expect(await send('127.0.0.4', 'list-bounces@other-list.test', 'user@contoso.com', raw)).toMatch(/^550 5\.7\.509 Access denied, sending domain sender\.test /);
  });

  it('every message from outside leaves with our ARC set (i=1), which dkimpy verifies', async () => {
    const m = await sunk(onprem, 'signed');
    expect(m.raw).toMatch(/^ARC-Seal: i=1; [^\r]*\r\n?[^]*?d=contoso\.com/m);
    expect(sealed(m)).toMatchObject({ cv: 'pass' });
  });
});

describe('outbound DKIM signing (dkimSigningConfigs)', () => {
  it('our mail to a partner is signed with RSA and Ed25519, verified by dkimpy; From, To, Subject, Date, Message-ID signed', async () => {
    const raw = message('ceo@contoso.com', 'outbound signed').replace('To: user@contoso.com', 'To: someone@partner.example');
    expect(await send('127.0.0.10', 'ceo@contoso.com', 'someone@partner.example', raw)).toMatch(/^250 2\.6\.0 /);
    const m = await sunk(partner, 'outbound signed');
    const results = JSON.parse(dkimpy(['verify', recordsFile], m.raw)) as Array<{ ok: boolean; domain: string; selector: string; algorithm: string; headers: string }>;
    expect(results.map((r) => [r.selector, r.algorithm, r.ok]).sort()).toEqual([
      ['ed2026', 'ed25519-sha256', true],
      ['rsa2026', 'rsa-sha256', true],
    ]);
    for (const r of results) expect(r.headers.toLowerCase().split(/:\s*/).sort()).toEqual(['date', 'from', 'message-id', 'subject', 'to']);
    expect(m.raw).not.toMatch(/^ARC-Seal:/m); // our own servers' mail is not sealed: it was not authenticated here
    expect(await gw.logged('delivered', (e) => e.recipient === 'someone@partner.example')).toMatchObject({ signed: { dkim: ['rsa2026._domainkey.contoso.com', 'ed2026._domainkey.contoso.com'] } });
  });

  it('a signature still verifies after the header firewall removed Exchange headers on the way out', async () => {
    const raw = message('ceo@contoso.com', 'firewalled', 'X-MS-Exchange-Organization-SCL: -1\r\n').replace('To: user@contoso.com', 'To: other@partner.example');
    expect(await send('127.0.0.10', 'ceo@contoso.com', 'other@partner.example', raw)).toMatch(/^250 2\.6\.0 /);
    const m = await sunk(partner, 'firewalled');
    expect(m.raw).not.toMatch(/X-MS-Exchange-/i);
    expect((JSON.parse(dkimpy(['verify', recordsFile], m.raw)) as Array<{ ok: boolean }>).every((r) => r.ok)).toBe(true);
  });

  it('mail to our own servers (onPremises connector) is not signed', async () => {
    expect(await send('127.0.0.10', 'ceo@contoso.com', 'user@contoso.com', message('ceo@contoso.com', 'internal'))).toMatch(/^250 2\.6\.0 /);
    expect((await sunk(onprem, 'internal')).raw).not.toMatch(/^DKIM-Signature:/m);
  });
});

describe('explain --message (Test-Message)', () => {
  it('runs the checks on a real message: what each found, our Authentication-Results, and the verdict', async () => {
    const forged = path.join(dir, 'forged.eml');
    fs.writeFileSync(forged, message('alice@sender.test', 'explained').replace(/\r\n/g, '\n')); // saved with LF line ends, as an editor does
    const r = await runCli(['explain', '--config', policyFile, '--ip', '127.0.0.5', '--from', 'alice@sender.test', '--to', 'user@contoso.com', '--message', forged]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^  spf=fail \(sender\.test\)$/m);
    expect(r.stdout).toMatch(/^  dmarc=fail \(header From sender\.test, policy reject\)$/m);
    expect(r.stdout).toContain('  reply: 550 5.7.509 Access denied, sending domain sender.test does not pass DMARC verification and has a DMARC policy of reject');
    const signed = path.join(dir, 'signed.eml');
    fs.writeFileSync(signed, dkimpy(['sign', 'sender.test', 's1', keyFiles.sender!], message('alice@sender.test', 'explained signed')));
    const ok = await runCli(['explain', '--config', policyFile, '--ip', '127.0.0.3', '--from', 'alice@sender.test', '--to', 'user@contoso.com', '--message', signed]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^  dkim=pass \(d=sender\.test s=s1\)$/m);
    expect(ok.stdout).toMatch(/^  signing for user@contoso\.com \(header From sender\.test\): no DKIM signature.*; ARC seal arc2026\._domainkey\.contoso\.com$/m);
  });
  it('our own servers: not checked; the DKIM keys that sign toward a partner', async () => {
    const r = await runCli(['explain', '--config', policyFile, '--ip', '127.0.0.10', '--from', 'ceo@contoso.com', '--to', 'someone@partner.example', '--to', 'user@contoso.com']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  sender authentication: not checked (onPremises connector OnPrem: our own servers)');
    expect(r.stdout).toContain('  signing for someone@partner.example (header From contoso.com): DKIM rsa2026._domainkey.contoso.com, ed2026._domainkey.contoso.com');
    expect(r.stdout).toMatch(/^  signing for user@contoso\.com \(header From contoso\.com\): no DKIM signature/m);
  });
});

describe('reload', () => {
  it('a signing key replaced on disk is a change: SIGHUP reloads it (not "unchanged")', async () => {
    const before = gw.events('reloaded').length;
    const unchanged = gw.events('reload-unchanged').length;
    const { privateKey } = generateKeyPairSync('ed25519');
    fs.writeFileSync(keyFiles.ed!, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    gw.proc.kill('SIGHUP');
    await gw.waitFor(() => gw.events('reloaded').length > before || gw.events('reload-unchanged').length > unchanged, 10_000);
    expect(gw.events('reloaded').length).toBe(before + 1);
  });
});

describe('check: signing keys', () => {
  it('a key that is too short or unreadable is an error with file:line:column and a fix', async () => {
    const short = dkimKey('short', 'rsa', 1024);
    const file = writePolicy(
      dir,
      {
        gateway: testGateway(dir, { gatewayCert: path.join(dir, 'pki', 'gateway.crt'), gatewayKey: path.join(dir, 'pki', 'gateway.key') }),
        acceptedDomains: [{ domain: 'contoso.com' }],
        dkimSigningConfigs: [
          { domainName: 'contoso.com', selector: 'short', privateKey: short.file },
          { domainName: 'contoso.com', selector: 'gone', privateKey: path.join(dir, 'no-such.key') },
        ],
      } as never,
      'bad-keys.yaml',
    );
    const r = await runCli(['check', '--config', file]);
    expect(r.code).not.toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/bad-keys\.yaml:\d+:\d+: error: .*an RSA key of 1024 bits: at least 2048 are needed/);
    expect(out).toMatch(/bad-keys\.yaml:\d+:\d+: error: .*signing key .*no-such\.key: no such file \(fix: /);
    expect(out).toMatch(/openssl genpkey/);
  });
});
