// Draining a node (SPEC §12), performed: every queued message is handed to the peer over SMTP,
// one at a time, with its envelope as it is (sender, each recipient's NOTIFY and ORCPT, RET and
// ENVID, REQUIRETLS); a recipient the peer took is written as settled before the next message,
// and a message with nothing left is removed. The decisions are queue/drain.ts's.
//
// The drain is recorded in <queue>/.draining (the peer it goes to): a daemon that starts and
// finds it resumes the drain instead of listening, so an interrupted drain finishes.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../observe/log.js';
import { traced } from '../observe/events.js';
import { deliver, type DeliveryDeps } from '../delivery/client.js';
import { outcomes, type RecipientOutcome } from '../delivery/status.js';
import { afterHandOver, drainRoute, toHandOver } from '../queue/drain.js';
import type { Spool } from '../queue/spool.js';
import type { SmartHost } from '../policy/types.js';

export function drainMarker(queueDir: string): string {
  return path.join(queueDir, '.draining');
}

export interface DrainReport {
  handedOver: number;
  left: number;
  lines: string[];
}

export async function drainQueue(spool: Spool, peer: SmartHost, deps: DeliveryDeps, log: Logger): Promise<DrainReport> {
  const route = drainRoute(peer);
  const report: DrainReport = { handedOver: 0, left: 0, lines: [] };
  for (const env of await spool.list()) {
    const recipients = toHandOver(env);
    if (!recipients.length) {
      await spool.remove(env.id); // settled already (a drain interrupted after its last hand-over)
      continue;
    }
    let result: Map<string, RecipientOutcome>;
    try {
      result = await deliver({ envelope: env, recipients, route, content: () => spool.contentStream(env.id) }, deps);
    } catch (e) {
      result = new Map(recipients.map((r) => [r, outcomes.internalError((e as Error).message)]));
    }
    const after = afterHandOver(env, result);
    if (!after.left.length) await spool.remove(env.id);
    else if (after.handed.length) await spool.writeEnvelope(after.envelope);
    if (after.handed.length) log.info(traced({ event: 'drained', qid: env.id, to: peer.text, recipients: after.handed }), `handed over to ${peer.text}`);
    if (after.left.length) {
      report.left++;
      const why = result.get(after.left[0]!);
      report.lines.push(`${env.id}: not handed over (${after.left.join(', ')}): ${why ? `${why.code} ${why.detail}` : 'no answer'}`);
      log.warn({ event: 'drain-failed', qid: env.id, to: peer.text, recipients: after.left, result: why ? `${why.code} ${why.detail}` : null }, `not handed over to ${peer.text}`);
    } else report.handedOver++;
  }
  return report;
}

export function readMarker(queueDir: string): string | null {
  try {
    return fs.readFileSync(drainMarker(queueDir), 'utf8').trim() || null;
  } catch {
    return null;
  }
}
