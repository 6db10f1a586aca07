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

describe('MessageWriter.commit: the commit protocol of spool.ts', () => {
  const envelope = { receivedAt: new Date().toISOString(), sender: 'a@x.test', recipients: [{ address: 'b@y.test', status: 'pending' as const, connector: null, attempts: 0 }], bodyType: '7bit' as const, smtpUtf8: false, client: { ip: '127.0.0.2', helo: 'h', sessionId: 's', connector: null, tls: null } };
  it('a committed message is its content and its envelope, no temporary file left', async () => {
    const spool = new Spool(tmpDir('spool'));
    await spool.recover();
    const w = await spool.create();
    await w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    const env = await w.commit(envelope);
    expect(fs.readdirSync(spool.dir).sort()).toEqual([`${env.id}.eml`, `${env.id}.json`]);
    expect(env.size).toBe(Buffer.byteLength('Subject: x\r\n\r\nbody\r\n'));
  });
  it('when the content cannot be made durable, no envelope appears (nothing is acknowledged)', async () => {
    const spool = new Spool(tmpDir('spool'));
    await spool.recover();
    const w = await spool.create();
    await w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    // The disk refuses the content's fsync (EIO): the envelope written beside it must not be installed.
    const handle = (w as unknown as { handle: { sync: () => Promise<void> } }).handle;
    handle.sync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    await expect(w.commit(envelope)).rejects.toMatchObject({ code: 'EIO' });
    expect(fs.readdirSync(spool.dir).filter((n) => n.endsWith('.json') || n.endsWith('.tmp'))).toEqual([]);
    await w.abort();
    expect(fs.readdirSync(spool.dir)).toEqual([]);
  });
});
