// The layering of docs/architecture.md, enforced: each room of src/ imports only the rooms
// below it (and itself). A new import that points back up fails here.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Room → the rooms it may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  mail: [],
  policy: ['mail'],
  config: ['mail', 'policy'],
  tls: ['mail', 'policy'],
  observe: ['mail'],
  auth: ['mail', 'policy'],
  delivery: ['mail', 'policy', 'tls', 'observe', 'auth'],
  queue: ['mail', 'policy', 'delivery', 'observe'],
  bounce: ['mail', 'policy', 'queue'],
  smtp: ['mail', 'policy', 'tls', 'observe', 'queue', 'delivery', 'auth'],
  trace: ['mail', 'config', 'observe'],
  engines: ['mail', 'policy', 'observe', 'smtp', 'queue', 'trace'],
  cluster: ['mail', 'policy', 'config', 'tls', 'observe', 'delivery', 'queue', 'smtp', 'auth'],
  daemon: ['mail', 'policy', 'config', 'tls', 'observe', 'delivery', 'queue', 'bounce', 'smtp', 'trace', 'cluster', 'auth', 'engines'],
  cli: ['mail', 'policy', 'config', 'tls', 'observe', 'delivery', 'queue', 'bounce', 'smtp', 'trace', 'cluster', 'daemon', 'auth', 'engines'],
};

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

describe('layers', () => {
  it('every import of ours points down (or stays in its room)', () => {
    const violations: string[] = [];
    const rooms = new Set<string>();
    let seen = 0;
    for (const file of sources(SRC)) {
      const room = path.relative(SRC, file).split(path.sep)[0]!;
      rooms.add(room);
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)) {
        const spec = m[1] ?? m[2]!;
        seen++;
        const target = path.relative(SRC, path.resolve(path.dirname(file), spec)).split(path.sep)[0]!;
        if (target !== room && !(ALLOWED[room] ?? []).includes(target)) violations.push(`${path.relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(seen).toBeGreaterThan(100); // the scan sees the imports at all
    expect(violations).toEqual([]);
    expect([...rooms].filter((r) => !(r in ALLOWED))).toEqual([]); // a new room must be placed in the table
  });
});
