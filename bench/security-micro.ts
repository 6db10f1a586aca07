// The cost of outbound security lookups per message (SPEC §8), with unbound's cache warm: DANE
// (MX, A, AAAA, TLSA through the validating resolver, then the plan) and MTA-STS (the TXT id
// through gateway.dns.servers, the policy from the cache). Real nsd and unbound on loopback,
// started by the tests' helper; skipped when they are not installed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { lookupMx, planMx } from '../src/delivery/dane.js';
import { SecureResolver } from '../src/delivery/dnssec-resolver.js';
import { HopResolver } from '../src/delivery/resolve.js';
import { StsPolicies } from '../src/delivery/mta-sts.js';
import { startDnssec } from '../test/helpers/dnssec.js';

export type SecurityFigures = { daneUsPerMessage: number; mtaStsUsPerMessage: number; n: number } | { skipped: string };

export async function securityMicroBenchmark(n = 2000): Promise<SecurityFigures> {
  if (!['/usr/sbin/nsd', '/usr/sbin/unbound', '/usr/bin/ldns-signzone'].every((f) => fs.existsSync(f))) return { skipped: 'nsd, unbound or ldnsutils not installed' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-bench-dns-'));
  const dns = await startDnssec(dir, [
    { name: 'secure.test', kind: 'secure', records: ['dane IN MX 10 mx', 'mx IN A 192.0.2.25', `_25._tcp.mx IN TLSA 3 1 1 ${'ab'.repeat(32)}`] },
    { name: 'plain.test', kind: 'unsigned', records: ['sts IN MX 10 mx', 'mx IN A 192.0.2.26', '_mta-sts.sts IN TXT "v=STSv1; id=1"'] },
  ]);
  try {
    const [host, port] = dns.server.split(':');
    const secure = new SecureResolver([{ host: host!, port: Number(port) }]);
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      for (let i = 0; i < 50; i++) await fn(); // warm unbound's cache and the JIT
      const t = performance.now();
      for (let i = 0; i < n; i++) await fn();
      return ((performance.now() - t) * 1000) / n;
    };
    const daneUsPerMessage = await time(async () => {
      const plan = planMx(await lookupMx('dane.secure.test', secure), 'opportunistic');
      if (!plan.ok || plan.hops[0]!.security.kind !== 'dane') throw new Error('the benchmark zone is not DANE-secure');
    });
    const resolver = new HopResolver([dns.server]);
    const sts = new StsPolicies(path.join(dir, 'sts'), { txt: (name) => resolver.txt(name), lookup: resolver.lookup }, () => {}, async () => 'version: STSv1\nmode: enforce\nmx: mx.plain.test\nmax_age: 86400\n');
    const mtaStsUsPerMessage = await time(async () => {
      const r = await sts.forDomain('sts.plain.test');
      if (!r.policy) throw new Error('no MTA-STS policy in the benchmark');
    });
    return { daneUsPerMessage, mtaStsUsPerMessage, n };
  } finally {
    await dns.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
