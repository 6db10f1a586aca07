// A private Postfix instance doing the gateway's job: STARTTLS required inbound, the queue on
// the same disk, relay of bench.test to the sink with verified TLS. Installed and configured
// here, started and stopped by the benchmark.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const POSTFIX_DIR = '/var/tmp/connector-gateway-bench/postfix';
// The queue outside the configuration directory, as in a packaged install: `postfix start`
// checks the ownership of everything under the configuration directory (one process per
// file it warns about), which with the queue inside took 30 s at 3,000 queued messages.
export const POSTFIX_QUEUE = '/var/tmp/connector-gateway-bench/postfix-queue';

export function ensurePostfixInstalled(): void {
  if (fs.existsSync('/usr/sbin/postfix')) return;
  if (process.getuid?.() !== 0) throw new Error('Postfix is not installed and this is not root: apt-get install -y postfix');
  execFileSync('sh', ['-c', 'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'postfix'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** The default instance must list our directory in alternate_config_directories. */
function allowAlternateConfig(): void {
  const main = '/etc/postfix/main.cf';
  if (!fs.existsSync(main)) fs.writeFileSync(main, 'compatibility_level = 3.6\n');
  const text = fs.readFileSync(main, 'utf8');
  const current = /^alternate_config_directories\s*=\s*(.*)$/m.exec(text)?.[1] ?? '';
  if (!current.split(/[\s,]+/).includes(POSTFIX_DIR)) {
    execFileSync('postconf', ['-e', `alternate_config_directories = ${[current, POSTFIX_DIR].filter(Boolean).join(' ')}`]);
  }
}

function masterCf(port: number): string {
  // Debian's master.cf with every service unchrooted, smtpd on our port, tlsproxy enabled
  // (smtp_tls_connection_reuse needs it).
  const lines = fs.readFileSync('/etc/postfix/master.cf', 'utf8').split('\n');
  const out: string[] = [];
  let hasTlsproxy = false;
  for (const line of lines) {
    if (/^#?tlsproxy\s+unix/.test(line)) {
      out.push('tlsproxy  unix  -       -       n       -       0       tlsproxy');
      hasTlsproxy = true;
      continue;
    }
    if (!line || line.startsWith('#') || /^\s/.test(line)) {
      out.push(line);
      continue;
    }
    const f = line.split(/\s+/);
    if (f[0] === 'smtp' && f[1] === 'inet') f[0] = `127.0.0.1:${port}`;
    if (f.length >= 8) f[4] = 'n';
    out.push(f.join(' '));
  }
  if (!hasTlsproxy) out.push('tlsproxy  unix  -       -       n       -       0       tlsproxy');
  return out.join('\n') + '\n';
}

export interface PostfixConfig {
  port: number;
  sinkPort: number;
  cert: string;
  key: string;
  ca: string;
  sinkName: string;
}

export function configurePostfix(c: PostfixConfig): void {
  stopPostfix();
  fs.rmSync(POSTFIX_DIR, { recursive: true, force: true });
  fs.rmSync(POSTFIX_QUEUE, { recursive: true, force: true });
  fs.mkdirSync(POSTFIX_DIR, { recursive: true });
  allowAlternateConfig();
  const d = POSTFIX_DIR;
  for (const f of ['cert', 'key', 'ca'] as const) fs.copyFileSync(c[f], path.join(d, `${f}.pem`));
  fs.chmodSync(path.join(d, 'key.pem'), 0o600);
  fs.writeFileSync(
    path.join(d, 'main.cf'),
    `compatibility_level = 3.6
queue_directory = ${POSTFIX_QUEUE}
data_directory = ${d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
myorigin = $myhostname
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = bench.test
transport_maps = inline:{ {bench.test = smtp:[127.0.0.1]:${c.sinkPort}} }
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
message_size_limit = 36700160
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = ${d}/cert.pem
smtpd_tls_key_file = ${d}/key.pem
smtpd_tls_session_cache_database = btree:${d}/data/smtpd_scache
smtp_tls_security_level = verify
smtp_tls_CAfile = ${d}/ca.pem
smtp_tls_policy_maps = inline:{ {[127.0.0.1]:${c.sinkPort} = verify match=${c.sinkName}} }
smtp_tls_session_cache_database = btree:${d}/data/smtp_scache
smtp_tls_connection_reuse = yes
maillog_file = ${d}/maillog
maillog_file_prefixes = ${d}
`,
  );
  fs.writeFileSync(path.join(d, 'master.cf'), masterCf(c.port));
  // postfix check creates the queue's subdirectories, not the two roots.
  fs.mkdirSync(POSTFIX_QUEUE, { recursive: true });
  fs.mkdirSync(path.join(d, 'data'), { recursive: true });
  execFileSync('chown', ['postfix', path.join(d, 'data')]);
  const check = spawnSync('postfix', ['-c', d, 'check'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`postfix check: ${check.stderr}`);
}

export function startPostfix(): number {
  fs.rmSync(path.join(POSTFIX_QUEUE, 'pid/master.pid'), { force: true }); // the last run's, not this one's
  const r = spawnSync('postfix', ['-c', POSTFIX_DIR, 'start'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`postfix start: ${r.stderr}${r.stdout}`);
  const pidFile = path.join(POSTFIX_QUEUE, 'pid/master.pid');
  for (let i = 0; i < 50; i++) {
    if (fs.existsSync(pidFile)) return Number(fs.readFileSync(pidFile, 'utf8').trim());
    execFileSync('sleep', ['0.1']);
  }
  throw new Error('postfix did not write its master.pid');
}

export function stopPostfix(): void {
  if (fs.existsSync(path.join(POSTFIX_DIR, 'main.cf'))) spawnSync('postfix', ['-c', POSTFIX_DIR, 'stop'], { stdio: 'ignore' });
}
