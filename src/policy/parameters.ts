// PURE. MAIL FROM and RCPT TO parameters (SPEC §3): a parameter the gateway did not advertise is
// refused (555 5.5.4), never silently dropped — a sender's REQUIRETLS or an unknown extension
// must not be accepted and then ignored.
import { replies } from './replies.js';
import type { Refusal } from './inbound.js';

/** What EHLO offers, and the parameters each extension brings (RFC 1870, 6152, 6531, 3461, 8689). */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID']);
const RCPT_PARAMETERS = new Set(['NOTIFY', 'ORCPT']);
/** REQUIRETLS is offered after STARTTLS only (RFC 8689 §4); without TLS smtp-server answers 530 5.7.10. */
const MAIL_PARAMETERS_TLS = new Set([...MAIL_PARAMETERS, 'REQUIRETLS']);

export function unadvertisedParameter(command: 'MAIL' | 'RCPT', parameters: readonly string[], tls: boolean, connector: string | null): Refusal | null {
  const allowed = command === 'RCPT' ? RCPT_PARAMETERS : tls ? MAIL_PARAMETERS_TLS : MAIL_PARAMETERS;
  const bad = parameters.find((p) => !allowed.has(p.toUpperCase()));
  return bad === undefined ? null : { rule: 'parameter', connector, reply: replies.unsupportedParameter(bad.toUpperCase()) };
}
