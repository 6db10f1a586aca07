// The pure parsers at the edges: PROXY headers (smtp/proxy.ts) and smart hosts (config/normalize.ts).
import { describe, expect, it } from 'vitest';
import { parseProxyHeader } from '../../src/smtp/proxy.js';
import { parseSmartHost } from '../../src/config/normalize.js';

function v2(cmd: number, fam: number, body: Buffer): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const head = Buffer.alloc(4);
  head[0] = 0x20 | cmd;
  head[1] = fam;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([sig, head, body]);
}

describe('parseProxyHeader', () => {
  it('v1 TCP4 and TCP6: the source and the header length; the SMTP bytes after it are left', () => {
    const buf = Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 40000 25\r\nEHLO x\r\n');
    expect(parseProxyHeader(buf)).toEqual({ source: { remoteAddress: '203.0.113.7', remotePort: 40000 }, length: 42 });
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 5000 25\r\n'))).toMatchObject({ source: { remoteAddress: '2001:db8::7', remotePort: 5000 } });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ source: null, length: 15 });
  });
  it('v1: more bytes needed, or refused', () => {
    expect(parseProxyHeader(Buffer.from('PROX'))).toBeNull();
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4'))).toBeNull();
    expect(parseProxyHeader(Buffer.from('EHLO x\r\n'))).toBeInstanceOf(Error);
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.999 10.0.0.1 1 25\r\n'))).toBeInstanceOf(Error);
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 2001:db8::1 10.0.0.1 1 25\r\n'))).toBeInstanceOf(Error); // family mismatch
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 10.0.0.1 70000 25\r\n'))).toBeInstanceOf(Error);
    expect(parseProxyHeader(Buffer.from('PROXY ' + 'x'.repeat(120)))).toBeInstanceOf(Error); // no CRLF within 107 bytes
  });
  it('v2 PROXY over IPv4 and IPv6, LOCAL, and partial headers', () => {
    const b4 = Buffer.alloc(12);
    Buffer.from([198, 51, 100, 9]).copy(b4, 0);
    b4.writeUInt16BE(4321, 8);
    expect(parseProxyHeader(Buffer.concat([v2(1, 0x11, b4), Buffer.from('EHLO')]))).toEqual({ source: { remoteAddress: '198.51.100.9', remotePort: 4321 }, length: 28 });
    const b6 = Buffer.alloc(36);
    b6.writeUInt16BE(0x2001, 0);
    b6.writeUInt16BE(0x0db8, 2);
    b6.writeUInt16BE(7, 14);
    b6.writeUInt16BE(2525, 32);
    expect(parseProxyHeader(v2(1, 0x21, b6))).toEqual({ source: { remoteAddress: '2001:db8:0:0:0:0:0:7', remotePort: 2525 }, length: 52 });
    expect(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)))).toEqual({ source: null, length: 16 });
    const whole = v2(1, 0x11, b4);
    expect(parseProxyHeader(whole.subarray(0, 10))).toBeNull();
    expect(parseProxyHeader(whole.subarray(0, 20))).toBeNull();
  });
  it('v2: a bad signature, version, command or length is refused', () => {
    const b4 = Buffer.alloc(12);
    const good = v2(1, 0x11, b4);
    const badSig = Buffer.from(good);
    badSig[3] = 0x00;
    expect(parseProxyHeader(badSig)).toBeInstanceOf(Error);
    const badVersion = Buffer.from(good);
    badVersion[12] = 0x31;
    expect(parseProxyHeader(badVersion)).toBeInstanceOf(Error);
    expect(parseProxyHeader(v2(2, 0x11, b4))).toBeInstanceOf(Error);
    const tooLong = Buffer.from(good);
    tooLong.writeUInt16BE(5000, 14);
    expect(parseProxyHeader(tooLong)).toBeInstanceOf(Error);
  });
});

describe('parseSmartHost', () => {
  it('names, ports and IP literals', () => {
    expect(parseSmartHost('exch1.contoso.local')).toEqual({ host: 'exch1.contoso.local', port: 25, literal: false, text: 'exch1.contoso.local' });
    expect(parseSmartHost('Exch1.Contoso.Local:2525')).toMatchObject({ host: 'exch1.contoso.local', port: 2525, literal: false });
    expect(parseSmartHost('[10.0.0.5]:2525')).toMatchObject({ host: '10.0.0.5', port: 2525, literal: true });
    expect(parseSmartHost('[2001:db8::5]')).toMatchObject({ host: '2001:db8::5', port: 25, literal: true });
    expect(parseSmartHost('192.0.2.1:26')).toMatchObject({ host: '192.0.2.1', port: 26, literal: true });
  });
  it('refuses what is not a smart host, with a reason', () => {
    for (const bad of ['', 'exch 1.contoso.local', '*.contoso.com', '[exch1.contoso.local]', 'host:0', 'host:65536', 'host:port', 'http://host']) {
      expect(typeof parseSmartHost(bad), bad).toBe('string');
    }
  });
});
