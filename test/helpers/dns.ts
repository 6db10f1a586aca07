// A tiny authoritative DNS server on loopback UDP for the tests: MX, A and AAAA from a table.
import dgram from 'node:dgram';
import net from 'node:net';

export interface Zone {
  [name: string]: { MX?: Array<{ priority: number; exchange: string }>; A?: string[]; AAAA?: string[] };
}

const TYPES: Record<number, 'A' | 'MX' | 'AAAA'> = { 1: 'A', 15: 'MX', 28: 'AAAA' };

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])), Buffer.from([0])]);
}

function rr(type: number, rdata: Buffer): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0xc00c, 0); // pointer to the question name
  h.writeUInt16BE(type, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt32BE(60, 6);
  h.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([h, rdata]);
}

export async function startDns(zone: Zone): Promise<{ server: string; queries: string[]; close: () => Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (msg, rinfo) => {
    try {
      let off = 12;
      const labels: string[] = [];
      while (msg[off]! > 0) {
        labels.push(msg.subarray(off + 1, off + 1 + msg[off]!).toString());
        off += msg[off]! + 1;
      }
      off++;
      const qtype = msg.readUInt16BE(off);
      const qEnd = off + 4;
      const name = labels.join('.').toLowerCase();
      const kind = TYPES[qtype];
      queries.push(`${kind ?? qtype} ${name}`);
      const entry = zone[name];
      const answers: Buffer[] = [];
      if (entry && kind === 'A') for (const ip of entry.A ?? []) answers.push(rr(1, Buffer.from(ip.split('.').map(Number))));
      if (entry && kind === 'AAAA') for (const ip of entry.AAAA ?? []) answers.push(rr(28, Buffer.from(expand6(ip))));
      if (entry && kind === 'MX') {
        for (const mx of entry.MX ?? []) {
          const pref = Buffer.alloc(2);
          pref.writeUInt16BE(mx.priority);
          answers.push(rr(15, Buffer.concat([pref, encodeName(mx.exchange)])));
        }
      }
      const header = Buffer.alloc(12);
      msg.copy(header, 0, 0, 2); // id
      header.writeUInt16BE(0x8400 | 0x0100 | (entry ? 0 : 3), 2); // QR, AA, RD, rcode
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(answers.length, 6);
      sock.send(Buffer.concat([header, msg.subarray(12, qEnd), ...answers]), rinfo.port, rinfo.address);
    } catch {
      /* malformed query: ignore */
    }
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  const port = sock.address().port;
  return { server: `127.0.0.1:${port}`, queries, close: () => new Promise((r) => sock.close(() => r())) };
}

function expand6(ip: string): number[] {
  if (!net.isIPv6(ip)) throw new Error(ip);
  const [head, tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 255];
  });
}
