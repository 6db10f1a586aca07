// A downstream SMTP server for the container suite: STARTTLS offered, each message appended
// as one JSON line to the file given.
import fs from 'node:fs';
import { SMTPServer } from 'smtp-server';

const [port, cert, key, out] = process.argv.slice(2);
const server = new SMTPServer({
  key: fs.readFileSync(key),
  cert: fs.readFileSync(cert),
  authOptional: true,
  disabledCommands: ['AUTH'],
  logger: false,
  disableReverseLookup: true,
  closeTimeout: 200,
  onData(stream, session, cb) {
    let raw = '';
    stream.on('data', (d) => (raw += d));
    stream.on('end', () => {
      fs.appendFileSync(out, JSON.stringify({ to: session.envelope.rcptTo.map((r) => r.address), secure: !!session.secure, raw }) + '\n');
      cb(null, 'sunk');
    });
  },
});
server.on('error', () => {});
server.listen(Number(port), '127.0.0.1');
