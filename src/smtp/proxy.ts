// PROXY protocol v1 (text) and v2 (binary) in front of the SMTP listener, for listeners that
// list trusted load balancers. Only peers in that list may send a header; from anyone else the
// bytes are plain SMTP (a "PROXY …" line is then an unknown command), so nobody can spoof an IP.
import net from 'node:net';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;

export interface ProxiedAddress {
  remoteAddress: string;
  remotePort: number;
}

/**
 * Parses a PROXY header at the start of `buf`.
 * Returns null when more bytes are needed, an Error when it is not a valid header,
 * or the source (null for LOCAL / UNKNOWN: use the socket's own address) and the header length.
 */
export function parseProxyHeader(buf: Buffer): { source: ProxiedAddress | null; length: number } | Error | null {
  if (buf.length >= 1 && buf[0] === 0x0d) {
    // v2
    if (buf.length < 16) return V2_SIGNATURE.subarray(0, buf.length).equals(buf) ? null : new Error('invalid PROXY v2 signature');
    if (!buf.subarray(0, 12).equals(V2_SIGNATURE)) return new Error('invalid PROXY v2 signature');
    const verCmd = buf[12]!;
    if (verCmd >> 4 !== 2) return new Error('unsupported PROXY version');
    const fam = buf[13]!;
    const len = buf.readUInt16BE(14);
    if (len > 2048) return new Error('PROXY v2 header too long');
    if (buf.length < 16 + len) return null;
    const total = 16 + len;
    if ((verCmd & 0x0f) === 0x0) return { source: null, length: total }; // LOCAL (health checks)
    if ((verCmd & 0x0f) !== 0x1) return new Error('unsupported PROXY v2 command');
    const body = buf.subarray(16, total);
    if (fam === 0x11 && len >= 12) {
      return { source: { remoteAddress: [...body.subarray(0, 4)].join('.'), remotePort: body.readUInt16BE(8) }, length: total };
    }
    if (fam === 0x21 && len >= 36) {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
      return { source: { remoteAddress: groups.join(':'), remotePort: body.readUInt16BE(32) }, length: total };
    }
    return { source: null, length: total }; // UNSPEC / unix sockets: no usable address
  }
  // v1
  const nl = buf.indexOf('\r\n');
  if (nl < 0) {
    if (buf.length >= V1_MAX) return new Error('PROXY v1 header too long');
    return 'PROXY '.startsWith(buf.toString('latin1', 0, Math.min(6, buf.length))) ? null : new Error('not a PROXY header');
  }
  const line = buf.toString('latin1', 0, nl);
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') return new Error('not a PROXY header');
  if (parts[1] === 'UNKNOWN') return { source: null, length: nl + 2 };
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) return new Error('malformed PROXY v1 header');
  const src = parts[2]!;
  const port = Number(parts[4]);
  if (net.isIP(src) !== (parts[1] === 'TCP4' ? 4 : 6) || !Number.isInteger(port) || port < 0 || port > 65535) return new Error('malformed PROXY v1 address');
  return { source: { remoteAddress: src, remotePort: port }, length: nl + 2 };
}

/** Reads the header from a trusted peer, then hands the socket on with the proxied address. */
export function readProxyHeader(socket: net.Socket, timeoutMs: number, done: (err: Error | null, source: ProxiedAddress | null) => void): void {
  let buf = Buffer.alloc(0);
  let finished = false;
  const finish = (err: Error | null, source: ProxiedAddress | null, rest?: Buffer) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('close', onClose);
    socket.pause();
    if (rest && rest.length) socket.unshift(rest);
    done(err, source);
  };
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const r = parseProxyHeader(buf);
    if (r === null) return;
    if (r instanceof Error) return finish(r, null);
    finish(null, r.source, buf.subarray(r.length));
  };
  const onError = (e: Error) => finish(e, null);
  const onClose = () => finish(new Error('closed before the PROXY header'), null);
  const timer = setTimeout(() => finish(new Error('no PROXY header in time'), null), timeoutMs);
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
}
