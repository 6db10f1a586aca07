// The base layer (imports nothing of ours).
// RFC 3461 §4: xtext, the encoding of ENVID and ORCPT values ("+" and two hex digits).
// (smtp-server decodes what arrives; this encodes what goes on.)
export function encodeXtext(s: string): string {
  return s.replace(/[^\x21-\x7e]|[+=]/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}
