// The base layer (imports nothing of ours): text files as Windows tools write them. PowerShell's
// `>` writes UTF-16 LE with a byte-order mark; other editors UTF-8 with or without one.

/** Decodes UTF-8 (with or without BOM) and UTF-16 LE or BE with BOM. */
export function decodeTextFile(buf: Buffer): string {
  if (buf[0] === 0xff && buf[1] === 0xfe) return buf.subarray(2).toString('utf16le');
  if (buf[0] === 0xfe && buf[1] === 0xff) return Buffer.from(buf.subarray(2)).swap16().toString('utf16le');
  if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) return buf.subarray(3).toString('utf8');
  return buf.toString('utf8');
}
