// The spool's envelope reading: only envelopes of the version this code writes are read.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENVELOPE_VERSION, EnvelopeError, Spool } from '../../src/queue/spool.js';
import { tmpDir } from '../helpers/gateway.js';

describe('Spool.readEnvelope', () => {
  it('reads what commit wrote, and refuses another version, another id or a damaged file', async () => {
    const spool = new Spool(tmpDir('spool'));
    await spool.recover();
    const w = await spool.create();
    await w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    const env = await w.commit({ receivedAt: new Date().toISOString(), sender: 'a@x.test', recipients: [{ address: 'b@y.test', status: 'pending', connector: null, attempts: 0 }], bodyType: '7bit', smtpUtf8: false, client: { ip: '127.0.0.2', helo: 'h', sessionId: 's', connector: null, tls: null } });
    expect((await spool.readEnvelope(env.id)).version).toBe(ENVELOPE_VERSION);
    const file = path.join(spool.dir, `${env.id}.json`);
    fs.writeFileSync(file, JSON.stringify({ ...env, version: ENVELOPE_VERSION + 1 }));
    await expect(spool.readEnvelope(env.id)).rejects.toBeInstanceOf(EnvelopeError);
    fs.writeFileSync(file, JSON.stringify({ ...env, id: 'OTHER00000000000000' }));
    await expect(spool.readEnvelope(env.id)).rejects.toBeInstanceOf(EnvelopeError);
    fs.writeFileSync(file, '{"version":1,');
    await expect(spool.readEnvelope(env.id)).rejects.toBeInstanceOf(SyntaxError);
  });
});
