// mailauth documents this helper (README, "DMARC Helpers") but ships no declaration for it.
declare module 'mailauth/lib/dmarc/get-dmarc-record.js' {
  /** The DMARC record that applies to a domain (RFC 9989 tree walk), or false. */
  export default function getDmarcRecord(
    domain: string,
    resolver?: (name: string, rrtype: string) => Promise<unknown>,
    opts?: { strict?: boolean },
  ): Promise<false | { p?: string; sp?: string; pct?: number; rr?: string; isOrgRecord?: boolean }>;
}
