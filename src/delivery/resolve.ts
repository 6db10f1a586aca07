// Next-hop resolution (SPEC §4): smart hosts (literal, or name → MX → A/AAAA) and MX routing.
import { promises as dnsp } from 'node:dns';
import ipaddr from 'ipaddr.js';
import type { LookupFunction } from 'node:net';
import type { SmartHost } from '../policy/types.js';
import { DNS_STATUS } from './status.js';

export interface NextHop {
  /** The name we were told (smart host or MX exchange): SNI and logs. */
  name: string;
  address: string;
  port: number;
}

/** A resolution failure: temporary (defer, 4.4.312) or permanent (bounce). */
export class ResolveError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly status: string,
  ) {
    super(message);
  }
}

export class HopResolver {
  private resolver: dnsp.Resolver;

  constructor(servers: string[]) {
    this.resolver = new dnsp.Resolver({ timeout: 3000, tries: 2 });
    if (servers.length) this.resolver.setServers(servers);
  }

  private async addresses(name: string): Promise<string[]> {
    const [a, aaaa] = await Promise.allSettled([this.resolver.resolve4(name), this.resolver.resolve6(name)]);
    const out = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
    if (out.length) return out;
    const err = (a.status === 'rejected' ? a.reason : aaaa.status === 'rejected' ? aaaa.reason : null) as NodeJS.ErrnoException | null;
    const code = err?.code ?? 'ENODATA';
    throw new ResolveError(`DNS query failed for ${name}: ${code}`, false, DNS_STATUS.temporary);
  }

  /** MX exchanges by preference (random among equals); [] when the name has no MX. */
  private async mx(name: string): Promise<string[] | 'nxdomain'> {
    try {
      const records = await this.resolver.resolveMx(name);
      return records
        .map((r) => ({ ...r, tie: Math.random() }))
        .sort((x, y) => x.priority - y.priority || x.tie - y.tie)
        .map((r) => r.exchange);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENODATA') return [];
      if (code === 'ENOTFOUND') return 'nxdomain';
      throw new ResolveError(`DNS query failed for MX ${name}: ${code || (e as Error).message}`, false, DNS_STATUS.temporary);
    }
  }

  /** TXT records of a name, each joined ([] for NXDOMAIN or none); a ResolveError when DNS fails. */
  async txt(name: string): Promise<string[]> {
    try {
      return (await this.resolver.resolveTxt(name)).map((parts) => parts.join(''));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENODATA' || code === 'ENOTFOUND') return [];
      throw new ResolveError(`DNS query failed for TXT ${name}: ${code || (e as Error).message}`, false, DNS_STATUS.temporary);
    }
  }

  /** A net.LookupFunction over gateway.dns.servers, for connections by name (the MTA-STS policy host). */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.addresses(hostname).then(
      (list) => {
        const all = list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
        if ((options as { all?: boolean }).all) (callback as (err: null, addresses: typeof all) => void)(null, all);
        else callback(null, all[0]!.address, all[0]!.family);
      },
      (e: Error) => callback(Object.assign(new Error(e.message), { code: 'ENOTFOUND' }) as NodeJS.ErrnoException, '', 4),
    );
  };

  /** A smart host: "[ip]" as is; a name by MX, then A/AAAA. */
  async smartHost(h: SmartHost): Promise<NextHop[]> {
    if (h.literal || ipaddr.isValid(h.host)) return [{ name: h.host, address: h.host, port: h.port }];
    const mx = await this.mx(h.host);
    const names = mx === 'nxdomain' || mx.length === 0 ? [h.host] : mx;
    return this.expand(names, h.port);
  }

  /** MX routing for a recipient domain; NXDOMAIN and null MX are permanent. */
  async domain(domain: string, port = 25): Promise<NextHop[]> {
    const mx = await this.mx(domain);
    if (mx === 'nxdomain') throw new ResolveError(`DNS domain ${domain} does not exist`, true, DNS_STATUS.noSuchDomain);
    if (mx.length === 1 && (mx[0] === '' || mx[0] === '.')) throw new ResolveError(`${domain} does not accept mail (null MX)`, true, DNS_STATUS.nullMx);
    return this.expand(mx.length ? mx : [domain], port);
  }

  private async expand(names: string[], port: number): Promise<NextHop[]> {
    const hops: NextHop[] = [];
    let lastError: ResolveError | null = null;
    for (const name of names) {
      try {
        for (const address of await this.addresses(name)) hops.push({ name, address, port });
      } catch (e) {
        lastError = e as ResolveError;
      }
    }
    if (!hops.length) throw lastError ?? new ResolveError(`no address for ${names.join(', ')}`, false, DNS_STATUS.temporary);
    return hops;
  }
}
