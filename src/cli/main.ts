// connector-gateway command line: dispatch only; each command is its own file.
import { check } from './check.js';
import { fail } from './common.js';
import { devCerts } from './dev-certs.js';
import { explain } from './explain.js';
import { queue } from './queue.js';
import { serve } from './serve.js';
import { validate } from './validate.js';
import { tlsReport } from './tls-report.js';

// fsync and file I/O run on libuv's thread pool; 4 threads (the default) serialise the commits
// of concurrent sessions. Must be set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= '16';

const USAGE = `usage: connector-gateway <command> [options]

  serve     [--config FILE]          run the daemon (default command)
  check     [--config FILE]          validate the policy; exit 0 ok, 1 errors
  explain   --ip IP [--cert-name NAME] [--tls] --from ADDR --to ADDR [--to ADDR…]
            [--header "Name: value"…] [--size SIZE] [--config FILE]
                                     which connectors apply and what the gateway would answer
  validate  CONNECTOR [--to ADDR] [--from ADDR] [--config FILE]
                                     probe an outbound connector's next hops (and send a test)
  queue     list | show ID | retry [ID] | delete ID   [--config FILE]
  tls-report send [--now] [--config FILE]
                                     send RFC 8460 TLS reports now (--now: today so far)
  dev-certs [--dir DIR] [--hostname NAME] [--force]
                                     create a development CA and gateway certificate

The policy file is --config, else $GATEWAY_CONFIG, else config/gateway.yaml.`;

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'explain':
      return explain(rest);
    case 'validate':
      return validate(rest);
    case 'queue':
      return queue(rest);
    case 'dev-certs':
      return devCerts(rest);
    case 'tls-report':
      return tlsReport(rest);
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      if (cmd.startsWith('--')) return serve(argv);
      fail(`unknown command "${cmd}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((e: Error & { code?: string }) => {
  if (e.code === 'USAGE' || e.code?.startsWith('ERR_PARSE_ARGS')) fail(`${e.message}\n${USAGE}`);
  fail(e.stack ?? String(e), 1);
});
