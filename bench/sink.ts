// The downstream server (its own process, outside what is measured): requires STARTTLS,
// counts messages, and reports when it has the expected number.
import fs from 'node:fs';
import { SMTPServer } from 'smtp-server';

const cfg = JSON.parse(process.env.SINK ?? '{}') as { port: number; cert: string; key: string; expect: number };
let count = 0;
let first = 0;
// Every Message-ID seen, so that the report can say how many came more than once.
const seen = new Set<string>();
let duplicates = 0;
const server = new SMTPServer({
  key: fs.readFileSync(cfg.key),
  cert: fs.readFileSync(cfg.cert),
  authOptional: true,
  disabledCommands: ['AUTH'],
  logger: false,
  disableReverseLookup: true,
  closeTimeout: 200,
  size: 50 * 1024 * 1024,
  onMailFrom(_a, session, cb) {
    if (!session.secure) return cb(Object.assign(new Error('5.7.0 Must issue a STARTTLS command first'), { responseCode: 530 }));
    cb();
  },
  onData(stream, _session, cb) {
    let head = '';
    stream.on('data', (c: Buffer) => {
      if (head.length < 8192) head += c.toString('latin1');
    });
    stream.on('end', () => {
      const id = /^Message-ID:\s*(\S+)/im.exec(head)?.[1];
      if (id && seen.has(id)) duplicates++;
      else if (id) seen.add(id);
      count++;
      if (count === 1) first = Date.now();
      if (count === cfg.expect) process.stdout.write(JSON.stringify({ done: Date.now(), first, count, unique: seen.size, duplicates }) + '\n');
      cb(null, 'sunk');
    });
  },
});
server.on('error', () => {});
process.on('message', (m: { reset?: number }) => {
  if (m.reset !== undefined) {
    count = 0;
    duplicates = 0;
    seen.clear();
    cfg.expect = m.reset;
  }
});
server.listen(cfg.port, '127.0.0.1', () => process.stdout.write(JSON.stringify({ listening: cfg.port }) + '\n'));
