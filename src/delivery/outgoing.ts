// The message as it leaves (SPEC §3, §11): the spooled bytes through the header firewall, then
// the DKIM signatures and the ARC seal that policy/signing.ts asks for, computed over exactly
// what is sent. The spool file is read once per signing pass and once to send — no copy of the
// message is held in memory.
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { arcSet, dkimSignatures, type SigningKeys } from '../auth/sign.js';
import { HeaderSection } from '../mail/header-section.js';
import { parseHeaderBlock } from '../mail/headers.js';
import { mailboxDomain } from '../mail/address.js';
import { isExchangeTrustedHeader, keepExchangeHeadersTo } from '../policy/headers.js';
import { dkimMaySign, signingPlan, type SigningPlan } from '../policy/signing.js';
import type { Policy } from '../policy/types.js';
import type { Route } from '../policy/outbound.js';
import { HeaderFilter } from './header-filter.js';

export interface OutgoingJob {
  route: Route;
  content: () => Readable;
  /** The results the edge recorded for a message from outside (what the ARC seal carries). */
  auth?: { authResults: string; cv: 'none' | 'pass' | 'fail' };
}

export interface Outgoing {
  /** A fresh stream of the message as sent, and the filter it went through (for its count). */
  open(): { stream: Readable; filter: HeaderFilter | null };
  /** What was signed, for the delivery log. */
  signed: { dkim: string[]; arc: string | null };
}

/** The firewalled message, signed and sealed as the plan says. Throws SigningError when a key cannot sign. */
export async function outgoing(policy: Policy, keys: SigningKeys, job: OutgoingJob): Promise<Outgoing> {
  const firewalled = (): { stream: Readable; filter: HeaderFilter | null } => {
    const filter = keepExchangeHeadersTo(job.route) ? null : new HeaderFilter(isExchangeTrustedHeader);
    return { stream: filter ? pipeline(job.content(), filter, () => {}) : job.content(), filter };
  };
  // The spool file's head is read for the From domain only where a DKIM key may sign (not toward our own servers).
  const fromDomain = dkimMaySign(policy, job.route) ? await headerFromDomain(job.content()) : null;
  const plan: SigningPlan = signingPlan(policy, fromDomain, job.route, !!job.auth);
  if (!plan.dkim.length && !plan.arcSeal) return { open: firewalled, signed: { dkim: [], arc: null } };

  const pem = (file: string): string => keys.get(file) ?? '';
  // DKIM first: the ARC-Message-Signature may cover the DKIM-Signature fields, never the reverse.
  const dkim = await dkimSignatures(firewalled().stream, plan.dkim.map((c) => ({ domain: c.domainName, selector: c.selector, pem: pem(c.privateKey) })));
  const seal = plan.arcSeal && job.auth ? await arcSet(prefixed(dkim, firewalled().stream), { domain: plan.arcSeal.domain, selector: plan.arcSeal.selector, pem: pem(plan.arcSeal.privateKey) }, job.auth.authResults, job.auth.cv) : '';
  const added = seal + dkim;
  return {
    open: () => {
      const f = firewalled();
      return { stream: prefixed(added, f.stream), filter: f.filter };
    },
    signed: { dkim: plan.dkim.map((c) => `${c.selector}._domainkey.${c.domainName}`), arc: seal && plan.arcSeal ? `${plan.arcSeal.selector}._domainkey.${plan.arcSeal.domain}` : null },
  };
}

/** Header fields put in front of a message stream. */
function prefixed(fields: string, body: Readable): Readable {
  if (!fields) return body;
  const out = new PassThrough();
  out.write(Buffer.from(fields, 'latin1'));
  body.on('error', (e) => out.destroy(e));
  body.pipe(out);
  return out;
}

/** The domain of the message's header From (RFC 5322), read from the head of the stream; null without one. */
export async function headerFromDomain(stream: Readable): Promise<string | null> {
  const section = new HeaderSection(1024 * 1024);
  let head: Buffer | null = null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const step = section.push(chunk);
      if (step.kind === 'end') {
        head = step.head;
        break;
      }
      if (step.kind === 'overflow') break;
    }
  } finally {
    stream.destroy();
  }
  const from = head ? parseHeaderBlock(head.toString('latin1')).find((f) => f.name.toLowerCase() === 'from') : undefined;
  return from ? mailboxDomain(from.value) : null;
}

