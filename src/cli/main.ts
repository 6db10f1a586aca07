// connector-gateway command line: dispatch only; each command is its own file.
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { configPath, fail, usageError, VERSION } from './common.js';

// Each command's module is loaded when it runs (a command starts with only what it needs; an
// SMTP worker process, in particular, loads the listener and not delivery, the trace or the CLI).
const check = (a: string[]) => import('./check.js').then((m) => m.check(a));
const devCerts = (a: string[]) => import('./dev-certs.js').then((m) => m.devCerts(a));
const explain = (a: string[]) => import('./explain.js').then((m) => m.explain(a));
const queue = (a: string[]) => import('./queue.js').then((m) => m.queue(a));
const serve = (a: string[]) => import('./serve.js').then((m) => m.serve(a));
const validate = (a: string[]) => import('./validate.js').then((m) => m.validate(a));
const tlsReport = (a: string[]) => import('./tls-report.js').then((m) => m.tlsReport(a));
const importPolicy = (a: string[]) => import('./import.js').then((m) => m.importPolicy(a));
const trace = (a: string[]) => import('./trace.js').then((m) => m.trace(a));
const drain = (a: string[]) => import('./drain.js').then((m) => m.drain(a));
const reloadCommand = (a: string[]) => import('./reload.js').then((m) => m.reload(a));

// Node.js 24 or newer (node:sqlite, TLSA lookups, the TLS stack measured): an older one gets one
// line saying what to do, before any command's module is loaded — never a stack trace.
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
if (NODE_MAJOR < 24) {
  process.stderr.write(`connector-gateway needs Node.js 24 or newer; this is ${process.version}. In this shell run \`. scripts/node24.sh\` (it fetches Node 24 from the npm registry), or install Node.js 24.\n`);
  process.exit(1);
}

// fsync and file I/O run on libuv's thread pool; 4 threads (the default) serialise the commits
// of concurrent sessions. Must be set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= '16';

interface Command {
  synopsis: string;
  about: string;
  /** What runs it (none for `help`, which main answers itself). */
  run?: (args: string[]) => void | Promise<void>;
}

/** One entry a command: its synopsis, what it does (`help COMMAND`, `COMMAND --help`), its code. */
const COMMANDS: Record<string, Command> = {
  serve: { synopsis: 'serve [--config FILE]', about: 'run the daemon (the default command); SIGHUP or a saved file reloads the policy, SIGTERM stops', run: serve },
  check: { synopsis: 'check [--config FILE]', about: 'validate the policy: errors and warnings as file:line:column with a fix; exit 0 ok, 1 errors', run: check },
  reload: { synopsis: 'reload [--config FILE]', about: 'the running daemon reads its policy again (as SIGHUP): reloaded, unchanged, or refused with its errors; exit 0, or 1 when refused or no daemon runs', run: reloadCommand },
  explain: {
    synopsis: 'explain --ip IP [--cert-name NAME [--cert-ca FILE|public]] [--tls] [--helo NAME] --from ADDR --to ADDR [--to ADDR…] [--header "Name: value"…] [--message FILE.eml] [--size SIZE] [--requiretls] [--config FILE]',
    about: 'which connectors, rules and security apply and what the gateway would answer; exit 0 accepted, 3 refused',
    run: explain,
  },
  validate: { synopsis: 'validate CONNECTOR [--to ADDR] [--from ADDR] [--config FILE]', about: "probe an outbound connector's next hops step by step (and send a test); exit 0 pass, 1 fail", run: validate },
  queue: {
    synopsis: 'queue list | show ID | retry [ID] | hold ID|--destination D|--all | release ID|--destination D|--all | delete ID|--destination D|--all [--config FILE]',
    about: 'what waits for delivery (! after the id: on hold); retry, hold, release and delete act through the running daemon',
    run: queue,
  },
  drain: {
    synopsis: 'drain --to HOST:PORT [--config FILE]',
    about: 'retire this node: not ready, no new sessions, every queued message handed to HOST:PORT (the balancer or another node) and removed after its 250, then exit; exit 0 when nothing is left',
    run: drain,
  },
  trace: {
    synopsis: 'trace [--sender A] [--recipient A] [--message-id ID] [--queue-id ID] [--since T] [--until T] [--status S] [--limit N] [--json] [--config FILE]',
    about: 'the message trace: one line per message, or the timeline of one (--queue-id); T: 2026-11-24, 2026-11-24T10:00Z or 24h (ago)',
    run: trace,
  },
  'tls-report': { synopsis: 'tls-report send [--now] [--config FILE]', about: 'send RFC 8460 TLS reports now (--now: today so far, else yesterday)', run: tlsReport },
  import: {
    synopsis: 'import --exchange FILE [FILE…]',
    about: 'a policy on stdout from the ConvertTo-Json output of Get-InboundConnector, Get-OutboundConnector, Get-AcceptedDomain, Get-SendConnector, Get-ReceiveConnector; what cannot be mapped is listed as comments',
    run: importPolicy,
  },
  'dev-certs': { synopsis: 'dev-certs [--dir DIR] [--hostname NAME] [--force]', about: 'create a development CA, gateway certificate and client certificates', run: devCerts },
  help: { synopsis: 'help [COMMAND]', about: 'this text, or one command\'s' },
};

const USAGE = `usage: connector-gateway <command> [options]

${Object.values(COMMANDS)
  .map((c) => `  ${c.synopsis}\n      ${c.about}`)
  .join('\n')}
  --version
      the version of connector-gateway and of Node.js

The policy file is --config, else $GATEWAY_CONFIG, else config/gateway.yaml.
Exit codes: 0 success; 1 the policy has errors or the work failed; 2 a usage error;
3 explain: the gateway would refuse the message.`;

/** The command of that name (own entries only: "constructor" is not a command). */
const command = (name: string): Command | undefined => (Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined);

function commandHelp(name: string): string {
  const c = command(name);
  if (!c) fail(`no command "${name}"\n${USAGE}`);
  return `usage: connector-gateway ${c.synopsis}\n\n${c.about}\n`;
}

async function main(argv: string[]): Promise<void> {
  // An SMTP worker process (cluster/): forked by `serve` with its arguments.
  if (cluster.isWorker) return import('../cluster/worker.js').then((m) => m.runWorker(configPath(parseArgs({ args: argv.slice(argv[0] === 'serve' ? 1 : 0), options: { config: { type: 'string' } } }).values.config)));
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`connector-gateway ${VERSION} (Node.js ${process.version})\n`);
    return;
  }
  if (cmd === 'help' && rest[0]) {
    process.stdout.write(commandHelp(rest[0]));
    return;
  }
  if (cmd && command(cmd) && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(commandHelp(cmd));
    return;
  }
  // parseArgs would quietly keep the last of two --config: a policy must not be picked by accident.
  if (argv.filter((a) => a === '--config' || a.startsWith('--config=')).length > 1) throw usageError('--config is given more than once');
  if (cmd === undefined) return serve(rest);
  if (cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const run = command(cmd)?.run;
  if (run) return run(rest);
  if (cmd.startsWith('--')) return serve(argv);
  fail(`unknown command "${cmd}"\n${USAGE}`);
}

main(process.argv.slice(2)).catch((e: Error & { code?: string }) => {
  if (e.code === 'USAGE' || e.code?.startsWith('ERR_PARSE_ARGS')) fail(`${e.message}\n${USAGE}`);
  fail(e.stack ?? String(e), 1);
});
