// One reload step for every process that holds a policy (the daemon, and each SMTP worker): read
// and check the file again, then let the caller take the new policy. A policy with errors, or one
// the caller cannot apply (a certificate that does not load), is refused and the running policy
// stays in force (SPEC §6).
import { formatDiagnostics, loadPolicyFile } from './load.js';
import type { Policy } from '../policy/types.js';

export type ReloadResult = { ok: true; policy: Policy; warnings: string[] } | { ok: false; errors: string[] };

/** `apply` takes the checked policy; it refuses it by throwing (nothing of it must be in force then). */
export function reloadPolicy(file: string, apply: (policy: Policy) => void): ReloadResult {
  const r = loadPolicyFile(file);
  if (!r.policy) return { ok: false, errors: formatDiagnostics(r) };
  try {
    apply(r.policy);
  } catch (e) {
    return { ok: false, errors: [(e as Error).message] };
  }
  return { ok: true, policy: r.policy, warnings: formatDiagnostics(r) };
}
