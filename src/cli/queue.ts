// `connector-gateway queue`: list, show, retry, hold, release and delete queued messages.
import { parseArgs } from 'node:util';
import { Spool, isQueueId, pendingAt, type Envelope } from '../queue/spool.js';
import { askDaemon, type ControlRequest } from '../queue/control.js';
import { normalizeDomain } from '../mail/address.js';
import { isValidDomainName } from '../policy/match.js';
import { configPath, fail, loadOrExit } from './common.js';

export async function queue(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' }, all: { type: 'boolean', default: false }, destination: { type: 'string' } } });
  const file = configPath(values.config);
  const policy = loadOrExit(file, { checkFiles: false });
  const spool = new Spool(policy.gateway.queue.directory);
  const [sub, id] = positionals;
  if (sub === 'list' || sub === undefined) {
    const list = await spool.list();
    for (const e of list) {
      const pending = e.recipients.filter((x) => x.status === 'pending');
      const next = e.nextAttemptAt && !e.held ? `, next attempt ${e.nextAttemptAt}` : '';
      process.stdout.write(
        `${e.id}${e.held ? '!' : ' '} ${e.receivedAt}  ${String(e.size).padStart(8)}  <${e.sender}>  ${pending.length}/${e.recipients.length} pending${e.held ? ' (held)' : next}  ${e.recipients.map((x) => x.address).join(', ')}\n`,
      );
      // As mailq: why each recipient still waits (its last attempt's result).
      for (const r of pending) process.stdout.write(`      ${r.address}: ${r.lastResult ? `(${r.lastResult})` : '(not yet attempted)'}${r.attempts ? `, ${r.attempts} attempt(s)` : ''}\n`);
    }
    process.stdout.write(`${list.length} message(s) in ${spool.dir}\n`);
    return;
  }
  if (sub === 'retry') {
    if (id && !isQueueId(id)) fail(`queue retry: "${id}" is not a queue id`);
    const { n, daemon } = await throughDaemon(spool, { op: 'retry', id: id ?? null }, () =>
      editEnvelopes(spool, id ?? null, (env) => {
        env.nextAttemptAt = new Date().toISOString();
        return 'write';
      }),
    );
    if (id && n === 0) fail(`no message ${id} in ${spool.dir}`, 1);
    process.stdout.write(`${n} message(s) scheduled for immediate retry${daemon ? '' : ' (no daemon is running: at its next start)'}\n`);
    return;
  }
  if (sub === 'hold' || sub === 'release') {
    const destination = values.destination ?? null;
    if ([id !== undefined, values.all, destination !== null].filter(Boolean).length !== 1) fail(`queue ${sub}: give one of a queue id, --destination DOMAIN or --all`);
    if (id && !isQueueId(id)) fail(`queue ${sub}: "${id}" is not a queue id`);
    if (destination !== null && !isValidDomainName(normalizeDomain(destination))) fail(`queue ${sub}: "${destination}" is not a domain`);
    const hold = sub === 'hold';
    const want = destination === null ? null : normalizeDomain(destination);
    const { n } = await throughDaemon(spool, { op: sub, id: id ?? null, destination }, () =>
      editEnvelopes(spool, id ?? null, (env) => {
        if (want !== null && !pendingAt(env, want)) return 'skip';
        if (Boolean(env.held) === hold) return hold ? 'count' : 'skip'; // already held: counted, as the daemon does
        if (hold) env.held = true;
        else {
          delete env.held;
          env.nextAttemptAt = new Date().toISOString(); // released: due at once
        }
        return 'write';
      }),
    );
    if (id && n === 0) fail(`no message ${id}${hold ? '' : ' on hold'} in ${spool.dir}`, 1);
    process.stdout.write(`${n} message(s) ${hold ? 'put on hold' : 'released'}\n`);
    return;
  }
  if (sub === 'delete' && (values.all || values.destination !== undefined)) {
    // Postfix's postsuper -d ALL (or every message with a recipient still to deliver at a domain).
    if (id !== undefined || (values.all && values.destination !== undefined)) fail('queue delete: give one of a queue id, --destination DOMAIN or --all');
    const want = values.destination === undefined ? null : normalizeDomain(values.destination);
    if (want !== null && !isValidDomainName(want)) fail(`queue delete: "${values.destination}" is not a domain`);
    let n = 0;
    for (const env of await spool.list()) {
      if (want !== null && !pendingAt(env, want)) continue;
      const reply = await askDaemon(spool.dir, { op: 'delete', id: env.id });
      if (reply ? reply.ok : await spool.remove(env.id).then(() => true, () => false)) n++;
    }
    process.stdout.write(`${n} message(s) deleted\n`);
    return;
  }
  if (!['show', 'delete'].includes(sub)) fail(`queue: unknown subcommand "${sub}" (list | show ID | retry [ID] | hold ID|--destination D|--all | release ID|--destination D|--all | delete ID|--destination D|--all)`);
  if (!id) fail(`queue ${sub}: give a queue id`);
  if (!isQueueId(id)) fail(`queue ${sub}: "${id}" is not a queue id (10–32 capital letters and digits, as \`queue list\` shows them)`);
  if (sub === 'show') {
    try {
      process.stdout.write(JSON.stringify(await spool.readEnvelope(id), null, 2) + '\n');
    } catch {
      fail(`no message ${id} in ${spool.dir}`, 1);
    }
    return;
  }
  if (sub === 'delete') {
    // Through the daemon when one runs: it never writes back a message deleted during its attempt.
    const reply = await askDaemon(spool.dir, { op: 'delete', id });
    if (reply && !reply.ok) fail(`${reply.error} in ${spool.dir}`, 1);
    if (!reply) {
      try {
        await spool.remove(id);
      } catch {
        fail(`no message ${id} in ${spool.dir}`, 1);
      }
    }
    process.stdout.write(`deleted ${id}\n`);
    return;
  }
  fail(`queue: unknown subcommand "${sub}" (list | show ID | retry [ID] | hold ID|--destination D|--all | release ID|--destination D|--all | delete ID|--destination D|--all)`);
}

/** Asks the running daemon; with none, `offline` acts on the files (nothing else touches them then). */
async function throughDaemon(spool: Spool, req: ControlRequest, offline: () => Promise<number>): Promise<{ n: number; daemon: boolean }> {
  const reply = await askDaemon(spool.dir, req);
  if (!reply) return { n: await offline(), daemon: false };
  if (!reply.ok) fail(reply.error, 1);
  return { n: reply.count, daemon: true };
}

/**
 * No daemon runs: `edit` changes envelopes in place — the one of `id`, or every one — and says
 * whether the message is written back and counted, only counted, or skipped. Returns the count.
 */
async function editEnvelopes(spool: Spool, id: string | null, edit: (env: Envelope) => 'write' | 'count' | 'skip'): Promise<number> {
  const envelopes = id ? await spool.readEnvelope(id).then((e) => [e], () => []) : await spool.list();
  let n = 0;
  for (const env of envelopes) {
    const what = edit(env);
    if (what === 'skip') continue;
    try {
      if (what === 'write') await spool.writeEnvelope(env);
      n++;
    } catch {
      // removed meanwhile, or not writable: not counted
    }
  }
  return n;
}
