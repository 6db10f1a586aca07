// Errors and warnings about a policy file, each tied to a place in it (file:line:column).
import type { Document, LineCounter } from 'yaml';
import type { TextPositions } from './yaml-positions.js';

type YamlNodeTests = Pick<typeof import('yaml'), 'isMap' | 'isPair' | 'isScalar'>;

export type Path = ReadonlyArray<string | number>;

export interface Diagnostic {
  severity: 'error' | 'warning';
  path: Path;
  message: string;
  hint?: string;
  /** Point at the key itself rather than its value (unknown keys). */
  atKey?: boolean;
  line?: number;
  column?: number;
}

export class Diagnostics {
  readonly list: Diagnostic[] = [];
  error(path: Path, message: string, hint?: string, atKey = false): void {
    this.list.push({ severity: 'error', path, message, hint, atKey });
  }
  warn(path: Path, message: string, hint?: string): void {
    this.list.push({ severity: 'warning', path, message, hint });
  }
  get errorCount(): number {
    return this.list.filter((d) => d.severity === 'error').length;
  }
}

export function pathText(path: Path): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || '(top level)';
}

/** Fills in line and column from the YAML document: the nearest node that exists on the path. */
export function locate(diags: Diagnostic[], doc: Document, lc: LineCounter, { isMap, isPair, isScalar }: YamlNodeTests): void {
  for (const d of diags) {
    let offset: number | undefined;
    for (let n = d.path.length; n >= 0 && offset === undefined; n--) {
      const sub = d.path.slice(0, n);
      if (d.atKey && n === d.path.length && n > 0) {
        const parent = sub.length > 1 ? doc.getIn(sub.slice(0, -1), true) : doc.contents;
        if (isMap(parent)) {
          const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === sub[sub.length - 1]);
          if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
        }
        continue;
      }
      const node = n === 0 ? doc.contents : doc.getIn(sub, true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) offset = range[0];
    }
    const pos = lc.linePos(offset ?? 0);
    d.line = pos.line;
    d.column = pos.col;
  }
}

/** The same, from positions read by js-yaml (yaml-positions.ts): the path's nearest existing node. */
export function locateInText(diags: Diagnostic[], positions: TextPositions): void {
  for (const d of diags) {
    let offset: number | undefined;
    for (let n = d.path.length; n >= 0 && offset === undefined; n--) {
      offset = positions.offset(d.path.slice(0, n), d.atKey === true && n === d.path.length && n > 0);
    }
    const pos = positions.linePos(offset ?? 0);
    d.line = pos.line;
    d.column = pos.col;
  }
}

export function formatDiagnostic(file: string, d: Diagnostic): string {
  const where = `${file}:${d.line ?? 1}:${d.column ?? 1}`;
  const at = d.path.length ? ` ${pathText(d.path)}:` : '';
  return `${where}: ${d.severity}:${at} ${d.message}${d.hint ? ` (fix: ${d.hint})` : ''}`;
}
