// Policy file → validated Policy, or diagnostics with file:line:column.
import { decodeTextFile } from '../mail/text-file.js';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import jsyaml from 'js-yaml';
import type { Policy } from '../policy/types.js';
import { policySchema } from './schema.js';
import { normalize } from './normalize.js';
import { lint, lintFiles } from './lint.js';
import { Diagnostics, formatDiagnostic, locate, locateInText, type Diagnostic } from './diagnostics.js';
import { textPositions } from './yaml-positions.js';

export interface LoadResult {
  file: string;
  policy: Policy | null; // null when there are errors
  diagnostics: Diagnostic[];
}

export interface LoadOptions {
  /** Directory relative paths in the policy are resolved against (default: the working directory). */
  baseDir?: string;
  /** Check certificate and CA files (default true). */
  checkFiles?: boolean;
  now?: Date;
}

/** Schema, meaning and files of already parsed YAML; diagnostics carry paths, not positions yet. */
function validate(data: unknown, opts: LoadOptions): { policy: Policy | null; d: Diagnostics } {
  const d = new Diagnostics();
  const parsed = policySchema.safeParse(data ?? {}, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      if (issue.code === 'unrecognized_keys') {
        for (const k of issue.keys) d.error([...path, k], `unknown key "${k}"`, 'check the spelling against docs/policy-reference.md; unknown keys are refused so that a typo cannot weaken the policy', true);
      } else if (issue.code === 'invalid_type' && issue.input === undefined && path.length) {
        d.error(path, `${String(path[path.length - 1])} is required`, 'add it: docs/policy-reference.md gives its meaning and an example');
      } else if (issue.code === 'invalid_type' && issue.expected === 'boolean' && typeof issue.input === 'string') {
        // YAML 1.1 read yes/no/on/off as booleans; YAML 1.2 (this parser) reads them as strings.
        const truthy = /^(yes|y|on|true)$/i.test(issue.input.trim());
        d.error(path, `"${issue.input}" is a string here, not a boolean: YAML 1.2 reads only true and false as booleans`, `write ${truthy ? 'true' : 'false'}`);
      } else {
        d.error(path, issue.message);
      }
    }
    return { policy: null, d };
  }
  const policy = normalize(parsed.data, d, opts.baseDir ?? process.cwd());
  if (!d.errorCount) {
    lint(policy, d);
    if (opts.checkFiles !== false) lintFiles(policy, d, opts.now);
  }
  return { policy: d.errorCount ? null : policy, d };
}

// The position-keeping parser, loaded only for a syntax error.
const require = createRequire(import.meta.url);
type YamlModule = typeof import('yaml');
let yamlModule: YamlModule | null = null;
const yaml = (): YamlModule => (yamlModule ??= require('yaml') as YamlModule);

export function loadPolicyText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  if (!text.replace(/#.*$/gm, '').trim()) {
    return { file, policy: null, diagnostics: [{ severity: 'error', path: [], line: 1, column: 1, message: 'the policy is empty', hint: 'start from the bundled config/gateway.yaml' }] };
  }
  // Fast path: js-yaml is several times faster than the position-keeping parser, which matters
  // for policies with tens of thousands of ranges. A clean policy needs no positions; anything
  // to report is located by one more js-yaml pass that records where each node starts. Only a
  // syntax error goes to the position-keeping `yaml` parser, which says where it is.
  try {
    const data = jsyaml.load(text, { schema: jsyaml.CORE_SCHEMA });
    const fast = validate(data, opts);
    if (fast.policy && fast.d.list.length === 0) return { file, policy: fast.policy, diagnostics: [] };
    // Something to report: locate it with one more js-yaml pass (yaml-positions.ts), not the
    // position-keeping parser (ten times slower on a 50,000-connector policy).
    locateInText(fast.d.list, textPositions(text));
    return { file, policy: fast.policy, diagnostics: fast.d.list };
  } catch {
    // a syntax error (or a duplicate key): the slow path reports it with its position
  }
  const { LineCounter, parseDocument } = yaml();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const diagnostics: Diagnostic[] = doc.errors.map((e) => {
      const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
      // A bare * starts a YAML alias: the commonest slip in this policy ([*] for "every domain").
      const alias = e.code === 'BAD_ALIAS' || /^Alias /.test(e.message);
      return { severity: 'error', path: [], message: `YAML: ${e.message.split('\n')[0]}`, hint: alias ? 'quote it: "*" — in YAML an unquoted * starts an alias' : undefined, line: pos.line, column: pos.col };
    });
    return { file, policy: null, diagnostics };
  }
  const { policy, d } = validate(doc.toJS(), opts);
  locate(d.list, doc, lc, yaml());
  return { file, policy, diagnostics: d.list };
}

export function loadPolicyFile(file: string, opts: LoadOptions = {}): LoadResult {
  let text: string;
  try {
    text = decodeTextFile(fs.readFileSync(file)); // UTF-16 too: what PowerShell's `>` writes
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      file,
      policy: null,
      diagnostics: [{ severity: 'error', path: [], line: 1, column: 1, message: `cannot read the policy file (${code ?? (e as Error).message})` }],
    };
  }
  return loadPolicyText(text, file, opts);
}

export function formatDiagnostics(r: LoadResult): string[] {
  return r.diagnostics.map((d) => formatDiagnostic(r.file, d));
}
