// The policy reference cannot drift: every key of the schema is documented in docs/policy-reference.md.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { policySchema } from '../../src/config/schema.js';

type Node = { def?: { type?: string; innerType?: Node; in?: Node; element?: Node; options?: Node[] }; shape?: Record<string, Node> };

function unwrap(s: Node): Node {
  for (let i = 0; i < 10; i++) {
    const d = s.def;
    if (d?.innerType) s = d.innerType;
    else if (d?.type === 'pipe' && d.in) s = d.in;
    else break;
  }
  return s;
}

/** Every key path of the schema: "gateway.listeners[].port", … */
function keys(s: Node, at = '', out: string[] = []): string[] {
  s = unwrap(s);
  const d = s.def;
  if (d?.type === 'object' && s.shape) {
    for (const [k, v] of Object.entries(s.shape)) {
      const p = at ? `${at}.${k}` : k;
      out.push(p);
      keys(v, p, out);
    }
  } else if (d?.type === 'array' && d.element) keys(d.element, `${at}[]`, out);
  else if (d?.type === 'union') for (const o of d.options ?? []) keys(o, at, out);
  return out;
}

describe('docs/policy-reference.md', () => {
  it('documents every key of the schema', () => {
    const doc = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/policy-reference.md'), 'utf8');
    const all = keys(policySchema as unknown as Node);
    expect(all.length).toBeGreaterThan(100); // the walk sees the schema
    // Exceptions take the conditions' keys: documented once, under conditions.
    const missing = all.filter((k) => !doc.includes(`\`${k.replace('.exceptions.', '.conditions.')}\``));
    expect(missing).toEqual([]);
  });
});

describe('docs/replies.md', () => {
  it('names every reply of the reply table and every outbound status', async () => {
    const { replies } = await import('../../src/policy/replies.js');
    const { HOP_FAILURE_CODES, outcomes, DNS_STATUS } = await import('../../src/delivery/status.js');
    const doc = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/replies.md'), 'utf8');
    const inbound = Object.values(replies).map((f) => (f as (a: string) => { code: number; enhanced: string })('X'));
    const outbound = [
      ...Object.values(HOP_FAILURE_CODES),
      ...Object.values(DNS_STATUS),
      outcomes.noRoute('x').code,
      outcomes.noReply('x').code,
      outcomes.expired(1, 'x').code,
      outcomes.delivered('x', 'y', false).code,
    ];
    expect(inbound.length).toBeGreaterThan(15);
    expect(inbound.filter((r) => !doc.includes(`\`${r.code} ${r.enhanced} `))).toEqual([]);
    expect(outbound.filter((c) => !doc.includes(`\`${c}\``))).toEqual([]);
  });
});

describe('the docs stay true for someone who only has the repository (issue 21)', () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const read = (f: string) => fs.readFileSync(path.join(root, f), 'utf8');
  const docs = ['README.md', 'config/gateway.yaml', ...fs.readdirSync(path.join(root, 'docs')).map((f) => `docs/${f}`)];
  it('cite no specification or tool outside the repository', () => {
    for (const f of docs) {
      expect(read(f), f).not.toMatch(/SPEC §/);
      expect(read(f), f).not.toMatch(/\.\.\/shared/);
    }
  });
  it('name test files that exist', () => {
    for (const f of [...docs, 'deploy/monitoring/prometheus-rules.yaml']) {
      for (const m of read(f).matchAll(/test\/(?:unit|integration|container)\/[\w.-]+\.(?:ts|sh)/g)) expect(fs.existsSync(path.join(root, m[0])), `${f} names ${m[0]}`).toBe(true);
    }
  });
  it('list every package the test dependencies install, and every command of the CLI', async () => {
    const readme = read('README.md');
    for (const m of read('scripts/test-deps.sh').matchAll(/missing\+=\(([\w.-]+)\)/g)) expect(readme, m[1]).toContain(`\`${m[1]!.replace(/\.sh$/, '')}`);
    const main = read('src/cli/main.ts');
    const commands = [...main.matchAll(/^ {2}([a-z-]+): \{/gm)].map((m) => m[1]!);
    expect(commands.length).toBeGreaterThan(8);
    for (const c of commands.filter((c) => c !== 'help')) expect(readme, c).toMatch(new RegExp(`connector-gateway ${c}\\b`));
    for (const sub of ['hold', 'release']) expect(readme).toMatch(new RegExp(`\\| ${sub} ID`));
  });
});
