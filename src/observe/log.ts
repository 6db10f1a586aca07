// pino logs: one event per decision (SPEC §7). JSON lines when stdout is a file or a pipe (log
// shippers read them); one readable line per event when it is a terminal (an operator reads it).
// GATEWAY_LOG_FORMAT=json|pretty overrides.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export type { Logger };

const LEVEL_NAMES: Record<string, string> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO ', warn: 'WARN ', error: 'ERROR', fatal: 'FATAL' };
const QUIET = new Set(['level', 'time', 'svc', 'msg', 'event']);

/** One JSON log line as "HH:MM:SS.mmm LEVEL event: message key=value …". */
export function prettyLine(json: string): string {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof e.time === 'string' ? e.time.slice(11, 23) : '';
  const rest = Object.entries(e)
    .filter(([k]) => !QUIET.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${LEVEL_NAMES[String(e.level)] ?? String(e.level)} ${e.event ? `${String(e.event)}: ` : ''}${String(e.msg ?? '')}${rest ? `  ${rest}` : ''}`;
}

function prettyStream(out: NodeJS.WriteStream): Writable {
  let buf = '';
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        out.write(prettyLine(buf.slice(0, nl)) + '\n');
        buf = buf.slice(nl + 1);
      }
      cb();
    },
  });
}

/**
 * @param tee also given every log line (JSON) as written — the message trace's feed; it must
 *   only buffer (it runs on the hot path).
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream, tee?: (line: string) => void): Logger {
  const format = process.env.GATEWAY_LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const out = destination ?? (format === 'pretty' ? prettyStream(process.stdout) : pino.destination({ dest: 1, sync: false }));
  const dest = tee
    ? {
        write(line: string): void {
          (out as { write: (s: string) => unknown }).write(line);
          tee(line);
        },
        flush(cb?: (err?: Error) => void): void {
          const f = (out as { flush?: (cb?: (err?: Error) => void) => void }).flush;
          if (f) f.call(out, cb);
          else cb?.();
        },
        flushSync(): void {
          (out as { flushSync?: () => void }).flushSync?.();
        },
      }
    : out;
  return pino(
    {
      level,
      base: { svc: 'connector-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest as NodeJS.WritableStream,
  );
}
