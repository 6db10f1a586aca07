// The js-yaml position reader (src/config/yaml-positions.ts) against the `yaml` parser's own
// positions, node by node, on real policies and on the shapes policies use. It reads js-yaml's
// loader state, so this is the test that fails when a js-yaml upgrade changes it.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isMap, isPair, isScalar, isSeq, parseDocument, type Node as YNode } from 'yaml';
import { textPositions } from '../../src/config/yaml-positions.js';
import { loadPolicyText } from '../../src/config/load.js';

type Path = (string | number)[];

/** Every node of a `yaml` document with its path and start offset; keys with atKey. */
function referencePositions(text: string): { path: Path; atKey: boolean; offset: number }[] {
  const out: { path: Path; atKey: boolean; offset: number }[] = [];
  const walk = (node: unknown, path: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key) || !pair.key.range) continue;
        const key = String(pair.key.value);
        out.push({ path: [...path, key], atKey: true, offset: pair.key.range[0] });
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
    const range = (node as YNode | null)?.range;
    // A null written as nothing (`key:`) has no text of its own to point at.
    if (range && !(isScalar(node) && node.value === null && range[0] === range[1])) out.push({ path, atKey: false, offset: range[0] });
  };
  walk(parseDocument(text).contents, []);
  return out;
}

const shapes = `# a comment before everything
gateway:
  hostname: mx1.contoso.test   # trailing comment
  listeners: [{ name: mx, port: 2525 }, { name: sub, address: "127.0.0.1", port: 587 }]
  empty:
  queue:
    directory: ./queue

    retryIntervals:
      - 1m
      - 5m
acceptedDomains:
  - domain: contoso.com
  -   domain: fabrikam.com
      note: 'quoted: value'
inboundConnectors:
  - name: "Partner A"
    senderDomains: ["*", contosobank.com]
    senderIPAddresses:
    - 10.0.0.0/8
    nested: { a: { b: [1, 2, { c: d }] } }
  - { name: B, connectorType: onPremises }
multi: >
  folded
  text
`;

describe('yaml-positions', () => {
  const files = ['config/gateway.yaml', 'deploy/container/gateway.yaml'];
  for (const [name, text] of [['shapes', shapes], ...files.map((f) => [f, fs.readFileSync(f, 'utf8')])] as [string, string][]) {
    it(`every node and key of ${name} starts where the yaml parser says`, () => {
      const ref = referencePositions(text);
      expect(ref.length).toBeGreaterThan(20);
      const pos = textPositions(text);
      const wrong = ref.filter((r) => pos.offset(r.path, r.atKey) !== r.offset).map((r) => `${r.path.join('.')}${r.atKey ? ' (key)' : ''}: ${pos.offset(r.path, r.atKey)} vs ${r.offset}`);
      expect(wrong).toEqual([]);
    });
  }

  it('a path that is not there has no position, and lines and columns count from 1', () => {
    const pos = textPositions(shapes);
    expect(pos.offset(['gateway', 'nope'])).toBeUndefined();
    expect(pos.offset(['inboundConnectors', 7])).toBeUndefined();
    const at = pos.offset(['inboundConnectors', 1, 'connectorType']);
    expect(at).toBeDefined();
    expect(pos.linePos(at ?? 0)).toEqual({ line: 22, col: 31 });
    expect(pos.linePos(0)).toEqual({ line: 1, col: 1 });
  });

  it('an error deep in a large policy is located at its line and column', () => {
    const lines = ['gateway:', '  hostname: big.example.com', '  listeners: [{ name: mx, port: 2525 }]', '  tls: { certificate: x.crt, key: x.key }', 'inboundConnectors:'];
    for (let i = 0; i < 20000; i++) lines.push(`  - name: P${i}`, '    connectorType: partner', `    senderDomains: [partner${i}.example]`, `    senderIPAddresses: [${i === 15000 ? '10.0.0.300/28' : `10.${i >> 8}.${i & 255}.0/28`}]`);
    const text = lines.join('\n') + '\n';
    const r = loadPolicyText(text, 'big.yaml', { checkFiles: false });
    const err = r.diagnostics.find((d) => d.path[0] === 'inboundConnectors');
    expect(err?.path).toEqual(['inboundConnectors', 15000, 'senderIPAddresses', 0]);
    expect({ line: err?.line, column: err?.column }).toEqual({ line: 5 + 15000 * 4 + 4, column: 25 });
  });
});
