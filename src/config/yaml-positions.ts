// Where a path of the policy starts in its text, read from js-yaml's parse events.
//
// Why: the position-keeping `yaml` parser needs ~6 s and ~700 MB for a 50,000-connector
// policy, js-yaml with its `listener` option ~0.6 s. So a policy that parsed cleanly but has
// something to report is located here, in one more js-yaml pass, and the `yaml` parser is
// left to syntax errors (whose positions only it gives).
//
// This is the one place that reads js-yaml's loader state (`position`, `kind`, `result` at
// the `open` and `close` events of each node). test/unit/yaml-positions.test.ts compares
// every path of real policies with the `yaml` parser's positions, so an upgrade of js-yaml
// that changes those events fails there.
import jsyaml from 'js-yaml';
import type { Path } from './diagnostics.js';

interface YamlNode {
  start: number;
  end: number;
  kind: string | null;
  result: unknown;
  children: YamlNode[];
}

export interface TextPositions {
  /** Offset of the node at `path` (or of its key, with atKey); undefined when no such node. */
  offset(path: Path, atKey?: boolean): number | undefined;
  /** 1-based line and column of an offset. */
  linePos(offset: number): { line: number; col: number };
}

/** Parses `text` once (it must be YAML js-yaml accepts) and answers positions of paths in it. */
export function textPositions(text: string): TextPositions {
  const stack: YamlNode[] = [{ start: 0, end: text.length, kind: null, result: null, children: [] }];
  jsyaml.load(text, {
    schema: jsyaml.CORE_SCHEMA,
    listener(event, state) {
      if (event === 'open') {
        stack.push({ start: state.position, end: state.position, kind: null, result: null, children: [] });
        return;
      }
      const node = stack.pop();
      const parent = stack[stack.length - 1];
      if (!node || !parent) return;
      node.end = state.position;
      node.kind = state.kind ?? null;
      node.result = state.result;
      parent.children.push(node);
    },
  });
  const root = stack[0]?.children[0];

  // A node's start is where js-yaml began looking for it: skip blanks, line breaks and comments.
  const contentStart = (offset: number): number => {
    let i = offset;
    for (;;) {
      const ch = text[i];
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') i++;
      else if (ch === '#') while (i < text.length && text[i] !== '\n') i++;
      else return i;
    }
  };
  // In a mapping, a key is the scalar followed (after blanks) by ':'.
  const isKey = (n: YamlNode): boolean => {
    if (n.kind !== 'scalar') return false;
    let i = n.end;
    while (text[i] === ' ' || text[i] === '\t') i++;
    return text[i] === ':';
  };
  // A node js-yaml first tried to read as a block mapping (a scalar, a flow collection as a
  // sequence item) wraps the node it then read, which has the same result: look through it.
  const unwrap = (n: YamlNode): YamlNode => {
    let cur = n;
    for (let only = cur.children[0]; cur.children.length === 1 && only && only.result === cur.result; only = cur.children[0]) cur = only;
    return cur;
  };
  const step = (n: YamlNode, key: string | number, atKey: boolean): YamlNode | undefined => {
    const node = unwrap(n);
    if (node.kind === 'sequence') return typeof key === 'number' ? node.children[key] : undefined;
    if (node.kind !== 'mapping') return undefined;
    const kids = node.children;
    for (let i = 0; i < kids.length; i++) {
      const k = kids[i];
      if (!k || !isKey(k) || String(k.result) !== String(key)) continue;
      const v = kids[i + 1];
      if (atKey) return k;
      // `key:` with nothing after it has no value node: point at the key.
      return v && !isKey(v) && contentStart(v.start) < text.length && v.kind !== null ? v : k;
    }
    return undefined;
  };

  const lineStarts: number[] = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);

  return {
    offset(path, atKey = false) {
      let node = root;
      for (let i = 0; i < path.length && node; i++) {
        const key = path[i];
        if (key === undefined) return undefined;
        node = step(node, key, atKey && i === path.length - 1);
      }
      return node ? contentStart(node.start) : undefined;
    },
    linePos(offset) {
      let lo = 0;
      let hi = lineStarts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((lineStarts[mid] ?? 0) <= offset) lo = mid;
        else hi = mid - 1;
      }
      return { line: lo + 1, col: offset - (lineStarts[lo] ?? 0) + 1 };
    },
  };
}
