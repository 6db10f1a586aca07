// Sender authentication during DATA (SPEC §11): the bytes the client sends are fed to the checks
// as they arrive (auth/verify.ts, mailauth), so the DKIM body hashes are done at the final dot
// and only the DNS answers are waited for. One resolver per policy (gateway.dns.servers, the
// answers kept for their TTLs), shared by every session. The verdict is policy/authentication.ts's.
import { PassThrough } from 'node:stream';
import { authenticateMessage, mailauthResolver, type Authenticated, type Transmission } from '../auth/verify.js';
import { SecureResolver } from '../delivery/dnssec-resolver.js';
import { parseDnsServers } from '../mail/dns-server.js';
import type { Policy } from '../policy/types.js';

const resolvers = new WeakMap<Policy, ReturnType<typeof mailauthResolver> | undefined>();

/** The checks' resolver for a policy: gateway.dns.servers, or the system's when it lists none. */
export function authResolverFor(policy: Policy): ReturnType<typeof mailauthResolver> | undefined {
  if (!resolvers.has(policy)) {
    const servers = parseDnsServers(policy.gateway.dns.servers);
    resolvers.set(policy, servers.length ? mailauthResolver(new SecureResolver(servers)) : undefined);
  }
  return resolvers.get(policy);
}

/** How long the checks may take after the final dot: past it the message is accepted unchecked (a temporary failure is never a refusal). */
export const CHECKS_TIMEOUT_MS = 20_000;

/** The checks did not finish in time (DNS servers that do not answer, SPF includes that each time out). */
export class ChecksTimedOut extends Error {}

/** One message's checks, fed chunk by chunk. `result` never rejects: a failure of the checks themselves is an Error value. */
export class EdgeAuthentication {
  private readonly input = new PassThrough();
  private readonly checks: Promise<Authenticated | Error>;

  constructor(policy: Policy, t: Transmission) {
    this.checks = authenticateMessage(this.input, t, authResolverFor(policy)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  }

  /** What the checks found, or an Error: they failed, or took longer than CHECKS_TIMEOUT_MS after the final dot. */
  get result(): Promise<Authenticated | Error> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Error>((resolve) => {
      timer = setTimeout(() => resolve(new ChecksTimedOut(`sender authentication took longer than ${CHECKS_TIMEOUT_MS / 1000} s`)), CHECKS_TIMEOUT_MS);
    });
    return Promise.race([this.checks, late]).finally(() => clearTimeout(timer));
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
