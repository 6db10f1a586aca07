// Real DNSSEC for the tests, on loopback: zones signed with ldns-signzone (ldnsutils), served by
// nsd, and unbound as the validating resolver the gateway asks, with the signed zones' keys as
// its trust anchors. A zone is "secure" (validly signed), "bogus" (signed, with signatures that
// expired long ago: unbound answers SERVFAIL with an extended DNS error) or "unsigned" (no anchor:
// insecure). Debian packages nsd, unbound and ldnsutils; installed by scripts/test-deps.sh.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SecureResolver } from '../../src/delivery/dnssec-resolver.js';
import { freePort } from './wait.js';

export interface TestZone {
  name: string; // e.g. secure.test
  kind: 'secure' | 'bogus' | 'unsigned';
  /** Zone file lines after SOA and NS, names relative to the zone or absolute with a dot. */
  records: string[];
}

export interface Dnssec {
  /** For gateway.dns.servers. */
  server: string;
  /** Rewrites an unsigned zone's records and has nsd load them (give them a short TTL: unbound caches). */
  update: (zone: string, records: string[]) => Promise<void>;
  stop: () => Promise<void>;
}

/** Debian installs nsd and unbound in /usr/sbin, which a user's PATH may lack. */
const sbin = (name: string): string => (fs.existsSync(`/usr/sbin/${name}`) ? `/usr/sbin/${name}` : name);

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8' }).trim();
}

export async function startDnssec(dir: string, zones: TestZone[]): Promise<Dnssec> {
  fs.mkdirSync(dir, { recursive: true });
  const anchors: string[] = [];
  const nsdZones: string[] = [];
  const writeZone = (z: TestZone, serial: number): void => {
    fs.writeFileSync(
      path.join(dir, `${z.name}.zone`),
      [`$ORIGIN ${z.name}.`, '$TTL 300', `@ IN SOA ns.${z.name}. hostmaster.${z.name}. ${serial} 3600 600 86400 300`, `@ IN NS ns.${z.name}.`, 'ns IN A 127.0.0.1', ...z.records, ''].join('\n'),
    );
  };
  for (const z of zones) {
    const file = `${z.name}.zone`;
    writeZone(z, 1);
    let served = file;
    if (z.kind !== 'unsigned') {
      const ksk = run('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', z.name], dir);
      const zsk = run('ldns-keygen', ['-a', 'ECDSAP256SHA256', z.name], dir);
      // bogus: signatures valid in 2019 only, so a validating resolver finds them expired.
      const window = z.kind === 'bogus' ? ['-i', '20190101000000', '-e', '20190201000000'] : [];
      run('ldns-signzone', [...window, file, ksk, zsk], dir);
      served = `${file}.signed`;
      anchors.push(fs.readFileSync(path.join(dir, `${ksk}.ds`), 'utf8'));
    }
    nsdZones.push(`zone:\n  name: ${z.name}\n  zonefile: ${served}\n`);
  }
  fs.writeFileSync(path.join(dir, 'anchors.ds'), anchors.join(''));
  const nsdPort = await freePort();
  const unboundPort = await freePort();
  fs.writeFileSync(
    path.join(dir, 'nsd.conf'),
    `server:\n  ip-address: 127.0.0.1@${nsdPort}\n  zonesdir: ${dir}\n  pidfile: ${dir}/nsd.pid\n  username: ""\n  database: ""\n  zonelistfile: ${dir}/zone.list\n  xfrdfile: ${dir}/xfrd.state\n  xfrdir: ${dir}\n  logfile: ${dir}/nsd.log\nremote-control:\n  control-enable: no\n${nsdZones.join('')}`,
  );
  fs.writeFileSync(
    path.join(dir, 'unbound.conf'),
    [
      'server:',
      `  interface: 127.0.0.1@${unboundPort}`,
      `  port: ${unboundPort}`,
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${dir}/unbound.pid"`,
      '  use-syslog: no',
      `  logfile: "${dir}/unbound.log"`,
      '  do-not-query-localhost: no', // nsd is on loopback
      '  module-config: "validator iterator"',
      `  trust-anchor-file: "${dir}/anchors.ds"`,
      '  access-control: 127.0.0.0/8 allow',
      '  local-zone: "test." nodefault', // unbound answers .test itself otherwise (RFC 6761)
      // Nothing leaves the machine: every name outside the test zones is answered NXDOMAIN here
      // (a DMARC tree walk asks _dmarc.test, an SPF check example.org) instead of by the root servers.
      '  local-zone: "." static',
      ...zones.map((z) => `  local-zone: "${z.name}." transparent`),
      '  ede: yes', // RFC 8914 extended errors: "DNSSEC bogus" is told apart from other SERVFAILs
      '  val-log-level: 2',
      '  qname-minimisation: no',
      ...zones.flatMap((z) => ['stub-zone:', `  name: "${z.name}"`, `  stub-addr: 127.0.0.1@${nsdPort}`]),
      'remote-control:',
      '  control-enable: no',
      '',
    ].join('\n'),
  );
  const procs: ChildProcess[] = [
    spawn(sbin('nsd'), ['-d', '-c', path.join(dir, 'nsd.conf')], { stdio: 'ignore' }),
    spawn(sbin('unbound'), ['-d', '-c', path.join(dir, 'unbound.conf')], { stdio: 'ignore' }),
  ];
  const stop = async (): Promise<void> => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once('exit', r)))));
  };
  // Ready when unbound answers a question about the first zone from nsd.
  const probe = new SecureResolver([{ host: '127.0.0.1', port: unboundPort }], 500);
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      const a = await probe.query(`ns.${zones[0]!.name}`, 'A');
      if (a.rcode === 'NOERROR' || a.rcode === 'SERVFAIL') break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) {
      await stop();
      throw new Error(`nsd/unbound did not answer; see ${dir}/nsd.log and ${dir}/unbound.log`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  let serial = 1;
  const update = async (zone: string, records: string[]): Promise<void> => {
    const z = zones.find((x) => x.name === zone && x.kind === 'unsigned');
    if (!z) throw new Error(`no unsigned zone ${zone}`);
    writeZone({ ...z, records }, ++serial);
    procs[0]!.kill('SIGHUP'); // nsd reloads its zone files
    // Until nsd serves the new serial, then past the changed records' TTL (give them 1 s) at unbound.
    const until = Date.now() + 10_000;
    for (;;) {
      // A new resolver each time: one keeps answers for their TTL.
      const soa = await new SecureResolver([{ host: '127.0.0.1', port: nsdPort }], 500).query(zone, 'SOA').catch(() => null);
      if (soa?.records.some((r) => r.serial === serial)) break;
      if (Date.now() > until) throw new Error(`nsd did not load serial ${serial} of ${zone}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1200));
  };
  return { server: `127.0.0.1:${unboundPort}`, update, stop };
}
