// `connector-gateway queue`: list, show, retry, hold, release and delete queued messages.
import { parseArgs } from 'node:util';
import { Spool, isQueueId } from '../queue/spool.js';
import { askDaemon } from '../queue/control.js';
import { domainOf, normalizeDomain } from '../mail/address.js';
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
      const pending = e.recipients.filter((x) => x.status === 'pending').length;
      process.stdout.write(
        `${e.id}${e.held ? '!' : ' '} ${e.receivedAt}  ${String(e.size).padStart(8)}  <${e.sender}>  ${pending}/${e.recipients.length} pending${e.held ? ' (held)' : ''}  ${e.recipients.map((x) => x.address).join(', ')}\n`,
      );
    }
    process.stdout.write(`${list.length} message(s) in ${spool.dir}\n`);
    return;
  }
  if (sub === 'retry') {
    if (id && !isQueueId(id)) fail(`queue retry: "${id}" is not a queue id`);
    const reply = await askDaemon(spool.dir, { op: 'retry', id: id ?? null });
    let n: number;
    if (reply) {
      if (!reply.ok) fail(reply.error, 1);
      n = reply.count;
    } else n = await retryFiles(spool, id ?? null);
    if (id && n === 0) fail(`no message ${id} in ${spool.dir}`, 1);
    process.stdout.write(`${n} message(s) scheduled for immediate retry${reply ? '' : ' (no daemon is running: at its next start)'}\n`);
    return;
  }
  if (sub === 'hold' || sub === 'release') {
    const destination = values.destination ?? null;
    if ([id, values.all || undefined, destination ?? undefined].filter((x) => x !== undefined).length !== 1) fail(`queue ${sub}: give one of a queue id, --destination DOMAIN or --all`);
    if (id && !isQueueId(id)) fail(`queue ${sub}: "${id}" is not a queue id`);
    if (destination !== null && !isValidDomainName(normalizeDomain(destination))) fail(`queue ${sub}: "${destination}" is not a domain`);
    const reply = await askDaemon(spool.dir, { op: sub, id: id ?? null, destination });
    let n: number;
    if (reply) {
      if (!reply.ok) fail(reply.error, 1);
      n = reply.count;
    } else n = await holdFiles(spool, id ?? null, destination, sub === 'hold');
    if (id && n === 0) fail(`no message ${id}${sub === 'release' ? ' on hold' : ''} in ${spool.dir}`, 1);
    process.stdout.write(`${n} message(s) ${sub === 'hold' ? 'put on hold' : 'released'}\n`);
    return;
  }
  if (!['show', 'delete'].includes(sub)) fail(`queue: unknown subcommand "${sub}" (list | show ID | retry [ID] | hold ID|--destination D|--all | release ID|--destination D|--all | delete ID)`);
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
  fail(`queue: unknown subcommand "${sub}" (list | show ID | retry [ID] | hold ID|--destination D|--all | release ID|--destination D|--all | delete ID)`);
}

/** No daemon runs: the messages are made due now in their envelopes, for its next start. */
async function retryFiles(spool: Spool, id: string | null): Promise<number> {
  const ids = id ? [id] : (await spool.list()).map((e) => e.id);
  let n = 0;
  for (const t of ids) {
    try {
      const env = await spool.readEnvelope(t);
      env.nextAttemptAt = new Date().toISOString();
      await spool.writeEnvelope(env);
      n++;
    } catch {
      // removed meanwhile, or not readable: nothing to retry
    }
  }
  return n;
}

/** No daemon runs: the hold is set or cleared in the envelopes (a released one is due at once). */
async function holdFiles(spool: Spool, id: string | null, destination: string | null, hold: boolean): Promise<number> {
  const ids = id ? [id] : (await spool.list()).map((e) => e.id);
  const want = destination === null ? null : normalizeDomain(destination);
  let n = 0;
  for (const t of ids) {
    try {
      const env = await spool.readEnvelope(t);
      if (want !== null && !env.recipients.some((r) => r.status === 'pending' && normalizeDomain(domainOf(r.address)) === want)) continue;
      if (Boolean(env.held) === hold) {
        if (hold) n++; // already held: counted, as the daemon does
        continue;
      }
      if (hold) env.held = true;
      else {
        delete env.held;
        env.nextAttemptAt = new Date().toISOString();
      }
      await spool.writeEnvelope(env);
      n++;
    } catch {
      // removed meanwhile, or not readable
    }
  }
  return n;
}
