// Sender authentication's own cost (issue 19): DKIM signing of a 10 KB message with RSA 2048 and
// Ed25519 (target: at most 1 ms per message for RSA), and the inbound checks of one message
// without DNS (what is left when every answer is cached: parsing, hashing, verifying).
import { generateKeyPairSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { dkimSignatures } from '../src/auth/sign.js';
import { authenticateMessage } from '../src/auth/verify.js';

export interface AuthFigures {
  n: number;
  signRsaMs: number;
  signEd25519Ms: number;
  /** SPF, DKIM (one RSA signature), ARC and DMARC of one message, DNS from memory. */
  verifyMs: number;
}

function message(size: number): Buffer {
  const head = 'From: <load@bench.example>\r\nTo: <rcpt@bench.test>\r\nSubject: bench\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@bench.example>\r\n\r\n';
  const line = 'x'.repeat(98) + '\r\n';
  return Buffer.from(head + line.repeat(Math.ceil((size - head.length) / line.length)));
}

async function perMessage(n: number, work: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20; i++) await work(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await work();
  return (performance.now() - t0) / n;
}

export async function authMicroBenchmark(n = 500): Promise<AuthFigures> {
  const msg = message(10 * 1024);
  const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const rsaKey = [{ domain: 'bench.example', selector: 'rsa', pem: pem(rsa.privateKey) }];
  const edKey = [{ domain: 'bench.example', selector: 'ed', pem: pem(ed.privateKey) }];
  const signRsaMs = await perMessage(n, () => dkimSignatures(Readable.from([msg]), rsaKey));
  const signEd25519Ms = await perMessage(n, () => dkimSignatures(Readable.from([msg]), edKey));
  const signed = Buffer.concat([Buffer.from(await dkimSignatures(Readable.from([msg]), rsaKey), 'latin1'), msg]);
  const spki = rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const txt: Record<string, string> = { 'bench.example': 'v=spf1 ip4:127.0.0.1 -all', '_dmarc.bench.example': 'v=DMARC1; p=reject', 'rsa._domainkey.bench.example': `v=DKIM1; k=rsa; p=${spki}` };
  const resolve = async (name: string, type: string): Promise<unknown> => {
    const t = type === 'TXT' ? txt[name] : undefined;
    if (t === undefined) throw Object.assign(new Error('no data'), { code: 'ENODATA' });
    return [[t]];
  };
  const verifyMs = await perMessage(Math.ceil(n / 5), () => authenticateMessage(Readable.from([signed]), { ip: '127.0.0.1', helo: 'bench', sender: 'load@bench.example', authservId: 'gateway.bench.test' }, resolve));
  return { n, signRsaMs, signEd25519Ms, verifyMs };
}
