// RFC 3464 delivery status notifications: one for permanent failures and expiry, one
// "delayed" warning after gateway.queue.delayNotification, and "relayed" for NOTIFY=SUCCESS
// recipients handed to a next hop that does not offer DSN (RFC 3461).
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from '../mail/date.js';
import type { DsnKind, DsnRecipient } from '../queue/schedule.js';

export type { DsnKind, DsnRecipient };

export interface DsnInput {
  kind: DsnKind;
  hostname: string;
  queueId: string;
  originalSender: string;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** Header block of the original message (ends with CRLF), returned as text/rfc822-headers. */
  originalHeaders: string;
  /** RET=FULL: the whole original, returned as message/rfc822 instead of the headers. */
  originalMessage?: Buffer | null;
  /** RFC 3461 ENVID of the original, decoded. */
  envid?: string | null;
  now?: Date;
}

const HUMAN: Record<DsnKind, string> = {
  failed: 'Your message could not be delivered to the following recipients. This is a permanent error; the gateway will not try again.',
  delayed: 'Your message has not been delivered yet to the following recipients. The gateway will keep trying; you do not need to send it again.',
  relayed:
    'Your message was handed to the next mail system for the following recipients. That system does not report delivery, so this is the last notice you will get about them.',
};
const SUBJECT: Record<DsnKind, string> = { failed: 'Undeliverable', delayed: 'Delivery delayed', relayed: 'Relayed' };

const clean = (s: string) => s.replace(/[\r\n]+/g, ' ').slice(0, 900);

export function buildDsn(d: DsnInput): Buffer {
  const now = d.now ?? new Date();
  const boundary = `dsn-${randomBytes(8).toString('hex')}`;
  const subjectMatch = /^Subject:[ \t]*(.*(?:\r\n[ \t].*)*)/im.exec(d.originalHeaders);
  const subject = subjectMatch ? clean(subjectMatch[1]!) : '(no subject)';
  const list = d.recipients.map((r) => `  <${r.address}>: ${clean(r.diagnostic)}`).join('\r\n');
  const perRecipient = d.recipients
    .map((r) => {
      const lines: string[] = [];
      if (r.orcpt) lines.push(`Original-Recipient: ${clean(r.orcpt)}`);
      lines.push(`Final-Recipient: rfc822; ${r.address}`, `Action: ${d.kind}`, `Status: ${r.status}`);
      if (r.remote) lines.push(`Remote-MTA: dns; ${clean(r.remote)}`);
      lines.push(`Diagnostic-Code: smtp; ${clean(r.diagnostic)}`, `Last-Attempt-Date: ${rfc5322Date(now)}`);
      if (d.kind === 'delayed') lines.push(`Will-Retry-Until: ${rfc5322Date(new Date(now.getTime() + 86_400_000))}`);
      return lines.join('\r\n');
    })
    .join('\r\n\r\n');
  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${d.hostname}>`,
    `To: <${d.originalSender}>`,
    `Subject: ${SUBJECT[d.kind]}: ${subject}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${d.queueId}.${d.kind}.${randomBytes(4).toString('hex')}@${d.hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    HUMAN[d.kind],
    '',
    list,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    ...(d.envid ? [`Original-Envelope-Id: ${clean(d.envid)}`] : []),
    `Reporting-MTA: dns; ${d.hostname}`,
    `X-Connector-Gateway-Queue-ID: ${d.queueId}`,
    `Arrival-Date: ${rfc5322Date(d.arrivalDate)}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
  ];
  if (d.originalMessage) {
    const m = d.originalMessage;
    const crlf = m.length >= 2 && m[m.length - 2] === 13 && m[m.length - 1] === 10;
    return Buffer.concat([
      Buffer.from([...head, 'Content-Type: message/rfc822', '', ''].join('\r\n'), 'utf8'),
      m,
      Buffer.from(`${crlf ? '' : '\r\n'}--${boundary}--\r\n`, 'utf8'),
    ]);
  }
  return Buffer.from([...head, 'Content-Type: text/rfc822-headers', '', d.originalHeaders.replace(/\r\n$/, ''), '', `--${boundary}--`, ''].join('\r\n'), 'utf8');
}
