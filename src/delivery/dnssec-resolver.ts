// A stub resolver that tells whether an answer was DNSSEC-validated: it asks the configured
// servers (gateway.dns.servers) with the AD and DO bits and reads the AD bit of the reply
// (RFC 6840 §5.7). It validates nothing itself — a validating resolver does that — and the AD
// bit means something only from a resolver we trust (loopback, or gateway.dns.dnssecTrusted),
// which the caller decides. Node's own resolver never exposes the AD bit, hence this file;
// the wire format is dns-packet's. UDP first, TCP when the answer is truncated.
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import type { DnsServer } from '../mail/dns-server.js';

export type RecordType = 'MX' | 'A' | 'AAAA' | 'TLSA' | 'TXT' | 'SOA' | 'PTR';

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

interface RecordData {
  MX: { preference: number; exchange: string };
  A: string;
  AAAA: string;
  TLSA: TlsaRecord;
  TXT: string;
  SOA: { serial: number };
  PTR: string;
}

export interface DnsAnswer<T extends RecordType> {
  rcode: string; // NOERROR, NXDOMAIN, SERVFAIL, …
  /** The resolver set the AD bit: every record of the answer (or the denial) was validated. */
  secure: boolean;
  /** RFC 8914 extended DNS error codes given with the answer (6–12: DNSSEC bogus, expired, …). */
  extendedErrors: number[];
  records: Array<RecordData[T]>;
}

/** No answer could be had: every server timed out or was unreachable, or answered garbage. */
export class DnsQueryError extends Error {}

const EDE_OPTION = 15;

export class SecureResolver {
  constructor(
    private readonly servers: readonly DnsServer[],
    private readonly timeoutMs = 3000,
  ) {}

  /**
   * Answers kept for their TTL (at most 5 minutes; "no such name/data" 1 minute), so that a busy
   * destination costs no round trip per message; failures are never kept.
   */
  private cache = new Map<string, { until: number; answer: DnsAnswer<RecordType> }>();
  private static readonly MAX_ENTRIES = 10_000;

  async query<T extends RecordType>(name: string, type: T): Promise<DnsAnswer<T>> {
    const key = `${type} ${name.toLowerCase()}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.answer as DnsAnswer<T>;
    let last: Error = new DnsQueryError('no DNS server configured');
    for (const server of this.servers) {
      try {
        let reply = await this.udp(server, name, type);
        if (reply.flag_tc) reply = await this.tcp(server, name, type);
        const answer = toAnswer(reply, type);
        this.remember(key, answer, reply);
        return answer;
      } catch (e) {
        last = e as Error;
      }
    }
    throw last instanceof DnsQueryError ? last : new DnsQueryError(`DNS query ${type} ${name} failed: ${last.message}`);
  }

  private remember(key: string, answer: DnsAnswer<RecordType>, reply: Decoded): void {
    if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') return;
    const ttls = (reply.answers ?? []).map((a) => (a as { ttl?: number }).ttl ?? 0);
    const ttl = answer.records.length ? Math.min(300, ...ttls) : 60;
    if (ttl <= 0) return;
    this.cache.delete(key);
    this.cache.set(key, { until: Date.now() + ttl * 1000, answer });
    if (this.cache.size > SecureResolver.MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
  }

  private request(name: string, type: RecordType): { id: number; packet: dnsPacket.Packet } {
    const id = randomInt(0, 65536);
    return {
      id,
      packet: {
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
        questions: [{ type, name }],
        additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, flag_do: true, options: [] }],
      },
    };
  }

  private udp(server: DnsServer, name: string, type: RecordType): Promise<Decoded> {
    const { id, packet } = this.request(name, type);
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket(net.isIP(server.host) === 6 ? 'udp6' : 'udp4');
      const done = (err: Error | null, reply?: Decoded): void => {
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => done(new DnsQueryError(`no answer from ${server.host}:${server.port} within ${this.timeoutMs} ms`)), this.timeoutMs);
      socket.on('error', (e) => done(e));
      socket.on('message', (msg) => {
        let reply: Decoded;
        try {
          reply = dnsPacket.decode(msg) as Decoded;
        } catch {
          return; // not a DNS message: keep waiting for ours
        }
        if (reply.id !== id || !sameQuestion(reply, name, type)) return; // not our answer (spoofing, late reply)
        done(null, reply);
      });
      // A connected socket: replies from anyone but the server are dropped by the kernel, and a
      // closed port is reported at once (ECONNREFUSED) instead of after the timeout.
      socket.connect(server.port, server.host, () => socket.send(dnsPacket.encode(packet)));
    });
  }

  private tcp(server: DnsServer, name: string, type: RecordType): Promise<Decoded> {
    const { id, packet } = this.request(name, type);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: server.host, port: server.port });
      let buf = Buffer.alloc(0);
      const done = (err: Error | null, reply?: Decoded): void => {
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => done(new DnsQueryError(`no TCP answer from ${server.host}:${server.port} within ${this.timeoutMs} ms`)), this.timeoutMs);
      socket.on('error', (e) => done(e));
      socket.on('connect', () => socket.write(dnsPacket.streamEncode(packet)));
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        try {
          const reply = dnsPacket.streamDecode(buf) as Decoded;
          if (reply.id !== id || !sameQuestion(reply, name, type)) return done(new DnsQueryError('TCP answer to another question'));
          done(null, reply);
        } catch (e) {
          done(new DnsQueryError(`malformed TCP answer: ${(e as Error).message}`));
        }
      });
    });
  }
}

type Decoded = dnsPacket.DecodedPacket & { rcode?: string };

function sameQuestion(reply: Decoded, name: string, type: RecordType): boolean {
  const q = reply.questions?.[0];
  return !!q && q.type === type && q.name.toLowerCase() === name.toLowerCase().replace(/\.$/, '');
}

function toAnswer<T extends RecordType>(reply: Decoded, type: T): DnsAnswer<T> {
  const extendedErrors: number[] = [];
  for (const a of reply.additionals ?? []) {
    if (a.type !== 'OPT') continue;
    for (const o of a.options as Array<{ code: number; data?: Buffer }>) if (o.code === EDE_OPTION && o.data && o.data.length >= 2) extendedErrors.push(o.data.readUInt16BE(0));
  }
  const records: Array<RecordData[T]> = [];
  for (const a of reply.answers ?? []) {
    if (a.type !== type) continue;
    switch (a.type) {
      case 'MX':
        records.push({ preference: a.data.preference ?? 0, exchange: a.data.exchange } as RecordData[T]);
        break;
      case 'A':
      case 'AAAA':
      case 'PTR':
        records.push(a.data as RecordData[T]);
        break;
      case 'TLSA':
        records.push({ usage: a.data.usage, selector: a.data.selector, matchingType: a.data.matchingType, data: a.data.certificate } as RecordData[T]);
        break;
      case 'SOA':
        records.push({ serial: a.data.serial } as RecordData[T]);
        break;
      case 'TXT': {
        const parts = Array.isArray(a.data) ? a.data : [a.data];
        records.push(parts.map((p) => (Buffer.isBuffer(p) ? p.toString('utf8') : p)).join('') as RecordData[T]);
        break;
      }
    }
  }
  return { rcode: reply.rcode ?? 'NOERROR', secure: reply.flag_ad, extendedErrors, records };
}
