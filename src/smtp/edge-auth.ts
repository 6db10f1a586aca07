// Sender authentication during DATA (SPEC §11): the bytes the client sends are fed to the checks
// as they arrive (auth/verify.ts, mailauth), so the DKIM body hashes are done at the final dot
// and only the DNS answers are waited for. One resolver per policy (gateway.dns.servers, the
// answers kept for their TTLs), shared by every session. The verdict is policy/authentication.ts's.
import { PassThrough } from 'node:stream';
import { authenticateMessage, mailauthResolver, type Authenticated, type Transmission } from '../auth/verify.js';
import { SecureResolver } from '../delivery/dnssec-resolver.js';
import { parseDnsServer, type DnsServer } from '../mail/dns-server.js';
import type { Policy } from '../policy/types.js';

const resolvers = new WeakMap<Policy, ReturnType<typeof mailauthResolver> | undefined>();

/** The checks' resolver for a policy: gateway.dns.servers, or the system's when it lists none. */
export function authResolverFor(policy: Policy): ReturnType<typeof mailauthResolver> | undefined {
  if (!resolvers.has(policy)) {
    const servers = policy.gateway.dns.servers.map(parseDnsServer).filter((s): s is DnsServer => s !== null);
    resolvers.set(policy, servers.length ? mailauthResolver(new SecureResolver(servers)) : undefined);
  }
  return resolvers.get(policy);
}

/** One message's checks, fed chunk by chunk. `result` never rejects: a failure of the checks themselves is an Error value. */
export class EdgeAuthentication {
  private readonly input = new PassThrough();
  readonly result: Promise<Authenticated | Error>;

  constructor(policy: Policy, t: Transmission) {
    this.result = authenticateMessage(this.input, t, authResolverFor(policy)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  }

  write(chunk: Buffer): void {
    this.input.write(chunk);
  }

  end(): void {
    this.input.end();
  }

  /** The message will not be kept (too big, the client left): the checks stop. */
  abort(): void {
    this.input.destroy(new Error('message abandoned'));
  }
}
