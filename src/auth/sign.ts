// The adapter to mailauth for what the gateway signs (SPEC §11): DKIM signatures (RFC 6376,
// relaxed/relaxed; RSA and Ed25519, RFC 8463) and the ARC set (RFC 8617) of a message it
// authenticated. What to sign is decided by policy/signing.ts; this file only reads the keys and
// computes header fields over a message stream.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { dkimSign, sealMessage } from 'mailauth';
import { SIGNED_HEADERS } from '../policy/signing.js';
import type { Policy } from '../policy/types.js';

/** The PEM of every signing key the policy names, read at start and at each reload (`check` has vetted them). */
export type SigningKeys = ReadonlyMap<string, string>;

export function readSigningKeys(policy: Policy): SigningKeys {
  const files = policy.dkimSigningConfigs.filter((c) => c.enabled).map((c) => c.privateKey);
  const seal = policy.gateway.authentication?.arcSeal;
  if (seal) files.push(seal.privateKey);
  return new Map(files.map((f) => [f, fs.readFileSync(f, 'utf8')]));
}

/** A signature could not be made (a key mailauth refuses): the message then leaves unsigned, and this says why. */
export class SigningError extends Error {}

/** The DKIM-Signature fields for a message, each ending in CRLF (empty for no keys). */
export async function dkimSignatures(message: Readable, keys: ReadonlyArray<{ domain: string; selector: string; pem: string }>): Promise<string> {
  if (!keys.length) {
    message.resume();
    return '';
  }
  const r = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    headerList: SIGNED_HEADERS,
    signatureData: keys.map((k) => ({ signingDomain: k.domain, selector: k.selector, privateKey: k.pem })),
  } as unknown as Parameters<typeof dkimSign>[1]); // its declaration wants one key at the top level; signatureData is the documented list
  if (r.errors?.length) throw new SigningError(r.errors.map((e) => `${e.signingDomain}/${e.selector}: ${(e.err as Error)?.message ?? e.err}`).join('; '));
  return toCrlf(r.signatures);
}

/** The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) for a message, ending in CRLF. */
export async function arcSet(message: Readable, seal: { domain: string; selector: string; pem: string }, authResults: string, cv: 'none' | 'pass' | 'fail'): Promise<string> {
  const headers = await sealMessage(message, { signingDomain: seal.domain, selector: seal.selector, privateKey: seal.pem, authResults, cv });
  return toCrlf(headers.toString('latin1'));
}

function toCrlf(fields: string): string {
  if (!fields) return '';
  const t = fields.replace(/\r?\n/g, '\r\n');
  return t.endsWith('\r\n') ? t : `${t}\r\n`;
}
