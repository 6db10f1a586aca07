// RFC 3464 delivery status notifications: one for permanent failures and expiry, one
// "delayed" warning after gateway.queue.delayNotification.
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from '../smtp/message.js';

export interface DsnRecipient {
  address: string;
  status: string; // enhanced code, e.g. 5.1.1
  diagnostic: string;
  remote?: string;
}

export interface DsnInput {
  kind: 'failed' | 'delayed';
  hostname: string;
  queueId: string;
  originalSender: string;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** Header block of the original message (ends with CRLF), returned as text/rfc822-headers. */
  originalHeaders: string;
  now?: Date;
}

const clean = (s: string) => s.replace(/[\r\n]+/g, ' ').slice(0, 900);

export function buildDsn(d: DsnInput): string {
  const now = d.now ?? new Date();
  const boundary = `dsn-${randomBytes(8).toString('hex')}`;
  const failed = d.kind === 'failed';
  const subjectMatch = /^Subject:[ \t]*(.*(?:\r\n[ \t].*)*)/im.exec(d.originalHeaders);
  const subject = subjectMatch ? clean(subjectMatch[1]!) : '(no subject)';
  const human = failed
    ? `Your message could not be delivered to the following recipients. This is a permanent error; the gateway will not try again.`
    : `Your message has not been delivered yet to the following recipients. The gateway will keep trying; you do not need to send it again.`;
  const list = d.recipients.map((r) => `  <${r.address}>: ${clean(r.diagnostic)}`).join('\r\n');
  const perRecipient = d.recipients
    .map((r) => {
      const lines = [`Final-Recipient: rfc822; ${r.address}`, `Action: ${failed ? 'failed' : 'delayed'}`, `Status: ${r.status}`];
      if (r.remote) lines.push(`Remote-MTA: dns; ${clean(r.remote)}`);
      lines.push(`Diagnostic-Code: smtp; ${clean(r.diagnostic)}`, `Last-Attempt-Date: ${rfc5322Date(now)}`);
      if (!failed) lines.push(`Will-Retry-Until: ${rfc5322Date(new Date(now.getTime() + 86_400_000))}`);
      return lines.join('\r\n');
    })
    .join('\r\n\r\n');
  return [
    `From: Mail Delivery System <MAILER-DAEMON@${d.hostname}>`,
    `To: <${d.originalSender}>`,
    `Subject: ${failed ? 'Undeliverable' : 'Delivery delayed'}: ${subject}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${d.queueId}.${failed ? 'failed' : 'delayed'}.${randomBytes(4).toString('hex')}@${d.hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    human,
    '',
    list,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${d.hostname}`,
    `X-Connector-Gateway-Queue-ID: ${d.queueId}`,
    `Arrival-Date: ${rfc5322Date(d.arrivalDate)}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    d.originalHeaders.replace(/\r\n$/, ''),
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
}
