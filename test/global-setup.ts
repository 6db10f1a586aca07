// One temporary directory for the whole test run (test/helpers/gateway.ts tmpDir puts every
// test's files under it), removed at the end unless CG_KEEP_TMP=1 (to look at a failure).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-test-run-'));
  process.env.CG_TEST_TMP = root;
  return () => {
    if (process.env.CG_KEEP_TMP === '1') process.stdout.write(`test files kept in ${root}\n`);
    else {
      try {
        fs.rmSync(root, { recursive: true, force: true });
      } catch (e) {
        process.stdout.write(`could not remove ${root}: ${(e as Error).message}\n`);
      }
    }
  };
}
