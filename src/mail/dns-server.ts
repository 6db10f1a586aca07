// The base layer (imports nothing of ours): the address of a DNS server as gateway.dns.servers writes it.
import net from 'node:net';

export interface DnsServer {
  host: string;
  port: number;
}

/** The servers of gateway.dns.servers that parse (`check` reports the others). */
export function parseDnsServers(list: readonly string[]): DnsServer[] {
  return list.map(parseDnsServer).filter((s): s is DnsServer => s !== null);
}

/** "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53". */
export function parseDnsServer(text: string): DnsServer | null {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) return net.isIP(bracket[1]!) === 6 ? { host: bracket[1]!, port: Number(bracket[2] ?? 53) } : null;
  if (net.isIP(text)) return { host: text, port: 53 };
  const m = /^([^:]+):(\d+)$/.exec(text);
  if (m && net.isIP(m[1]!) === 4 && Number(m[2]) > 0 && Number(m[2]) < 65536) return { host: m[1]!, port: Number(m[2]) };
  return null;
}
