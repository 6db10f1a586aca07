// HAProxy (the Debian package) as the tests' TCP load balancer: round robin over the given
// gateway ports, PROXY v2 to each (send-proxy-v2), health-checked every 300 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { accepting, freePort } from './wait.js';

export async function startHaproxy(dir: string, ports: number[]): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 1000',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  retries 2',
      '  option redispatch',
      'frontend smtp',
      `  bind 127.0.0.1:${port}`,
      '  default_backend gateways',
      'backend gateways',
      '  balance roundrobin',
      ...ports.map((p, i) => `  server g${i} 127.0.0.1:${p} send-proxy-v2 check check-send-proxy inter 300 fall 1 rise 2`),
      '',
    ].join('\n'),
  );
  const proc = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; i < 50 && proc.exitCode === null; i++) {
    if (await accepting(port)) return { port, proc };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`haproxy does not listen: ${err}`);
}
