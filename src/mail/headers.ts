// The base layer (imports nothing of ours): a message's header block as text (latin1, so every
// byte stays as it is). A block is the header fields, each line ending in CRLF, without the
// empty line that ends the header section.

export interface HeaderField {
  name: string;
  /** Unfolded: continuation lines joined, leading white space of the value dropped. */
  value: string;
}

/** The fields of a block, in order, each as its raw lines (the first line and its continuations). */
function fieldsOf(block: string): string[][] {
  const fields: string[][] = [];
  const lines = block.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) last.push(line);
    else fields.push([line]);
  }
  return fields;
}

const nameOf = (first: string): string => {
  const colon = first.indexOf(':');
  return (colon < 0 ? first : first.slice(0, colon)).trim();
};

export function parseHeaderBlock(block: string): HeaderField[] {
  return fieldsOf(block).map((lines) => {
    const first = lines[0] ?? '';
    const colon = first.indexOf(':');
    const value = [colon < 0 ? '' : first.slice(colon + 1), ...lines.slice(1)].join('').replace(/^[ \t]+/, '');
    return { name: nameOf(first), value };
  });
}

/** Drops the fields whose name `drop` says so; returns the new block and how many were dropped. */
export function filterHeaderBlock(block: string, drop: (name: string, value: string) => boolean): { block: string; removed: number } {
  let removed = 0;
  const kept: string[] = [];
  for (const lines of fieldsOf(block)) {
    const first = lines[0] ?? '';
    if (drop(nameOf(first), [first.slice(first.indexOf(':') + 1), ...lines.slice(1)].join(' ').trim())) removed++;
    else kept.push(...lines);
  }
  return { block: kept.map((l) => l + '\r\n').join(''), removed };
}

/**
 * Removes every field named in `remove`, then sets each [name, value] of `set` (replacing any
 * field of that name) at the end of the block. Names compare case-insensitively.
 */
export function editHeaderBlock(block: string, remove: readonly string[], set: ReadonlyArray<readonly [string, string]>): string {
  const gone = new Set([...remove, ...set.map(([n]) => n)].map((n) => n.toLowerCase()));
  const { block: kept } = filterHeaderBlock(block, (name) => gone.has(name.toLowerCase()));
  return kept + set.map(([n, v]) => `${n}: ${v}\r\n`).join('');
}
