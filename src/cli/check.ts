// `connector-gateway check`: validate the policy; exit 0 when it has no errors, 1 otherwise.
import { parseArgs } from 'node:util';
import { formatDiagnostics, loadPolicyFile } from '../config/load.js';
import { configPath } from './common.js';

export function check(args: string[]): void {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const file = configPath(values.config);
  const r = loadPolicyFile(file);
  for (const line of formatDiagnostics(r)) process.stdout.write(line + '\n');
  const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = r.diagnostics.length - errors;
  process.stdout.write(`${file}: ${errors} error(s), ${warnings} warning(s)\n`);
  process.exit(errors ? 1 : 0);
}
