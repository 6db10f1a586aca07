// `connector-gateway import --exchange FILE…`: Exchange's connectors (ConvertTo-Json output of
// Get-InboundConnector, Get-OutboundConnector, Get-AcceptedDomain, Get-SendConnector,
// Get-ReceiveConnector) → a policy on stdout, with what could not be mapped as comments.
// Review it, fill in the gateway section, and run `connector-gateway check`.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Document } from 'yaml';
import { decodeJsonFile, importExchange, type ExchangeObject } from '../config/exchange-import.js';
import { fail, usageError } from './common.js';

export function importPolicy(args: string[]): void {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { exchange: { type: 'string', multiple: true } } });
  const files = [...(values.exchange ?? []), ...positionals];
  if (!values.exchange?.length) throw usageError('import --exchange FILE [FILE…] (ConvertTo-Json output of the Get-*Connector and Get-AcceptedDomain cmdlets)');
  const objects: ExchangeObject[] = [];
  for (const file of files) {
    let data: unknown;
    try {
      data = JSON.parse(decodeJsonFile(fs.readFileSync(file)));
    } catch (e) {
      fail(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not JSON (${(e as Error).message})`}`, 1);
    }
    for (const o of Array.isArray(data) ? data : [data]) if (o && typeof o === 'object') objects.push(o as ExchangeObject);
  }
  const r = importExchange(objects);
  const doc = new Document(
    {
    gateway: {
      hostname: 'mx1.example.com',
      listeners: [{ name: 'mx', address: '0.0.0.0', port: 25 }],
      tls: { certificate: 'certs/gateway.crt', key: 'certs/gateway.key' },
      queue: { directory: 'var/queue' },
    },
    ...r.policy,
    },
    { aliasDuplicateObjects: false },
  );
  doc.commentBefore = [
    ` Imported from Exchange by connector-gateway import (${files.join(', ')}).`,
    ' Review it: set gateway.hostname, the listeners and the certificate, then run',
    '   connector-gateway check --config THIS-FILE',
    ' Every Exchange parameter without an equivalent is listed as a comment at its entry.',
    ...r.skipped.map((s) => ` skipped: ${s}`),
  ].join('\n');
  for (const [at, lines] of r.notes) {
    const m = /^(\w+)\[(\d+)\]$/.exec(at)!;
    const node = doc.getIn([m[1], Number(m[2])], true) as { commentBefore?: string } | undefined;
    if (node) node.commentBefore = lines.map((l) => ` ${l.replace(/\n/g, ' ')}`).join('\n');
  }
  process.stdout.write(doc.toString({ lineWidth: 0 }));
}
