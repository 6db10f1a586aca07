// What every subcommand shares: where the policy is, how to fail, how to load it or exit.
import { createRequire } from 'node:module';
import { formatDiagnostics, loadPolicyFile, type LoadOptions } from '../config/load.js';
import type { Policy } from '../policy/types.js';

/** The version of this connector-gateway (package.json, two levels above dist/cli/). */
export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** The policy file: --config, else $GATEWAY_CONFIG, else config/gateway.yaml. */
export function configPath(v?: string): string {
  return v ?? process.env.GATEWAY_CONFIG ?? 'config/gateway.yaml';
}

/** Prints `connector-gateway: msg` on stderr and exits (2: usage, 1: the policy or the work failed). */
export function fail(msg: string, code = 2): never {
  process.stderr.write(`connector-gateway: ${msg}\n`);
  process.exit(code);
}

/** An error the dispatcher answers with the usage text and exit 2. */
export function usageError(msg: string): Error {
  return Object.assign(new Error(msg), { code: 'USAGE' });
}

/**
 * Loads the policy; prints its diagnostics (warnings too) on stderr; exits 1 when it has errors.
 * `checkFiles: false` for commands that never present a certificate (queue, explain).
 */
export function loadOrExit(file: string, opts: LoadOptions = {}): Policy {
  const result = loadPolicyFile(file, opts);
  for (const line of formatDiagnostics(result)) process.stderr.write(line + '\n');
  if (!result.policy) {
    const n = result.diagnostics.filter((d) => d.severity === 'error').length;
    fail(`${file}: ${n} error${n === 1 ? '' : 's'}`, 1);
  }
  return result.policy;
}
