// Sockets of an implicit-TLS listener before they become sessions. smtp-server guards them only
// with the idle timeout and not per client IP, so 1,100 connections from one address that never
// send a ClientHello would hold the listener for minutes. Here each is counted per IP from the
// moment it is accepted (beyond maxConnectionsPerIp it is closed: nothing can be said before
// TLS) and given tlsHandshakeTimeout to reach its session. Counting and timing only; the numbers
// are the policy's (gateway.limits).
import type net from 'node:net';
import { OpenCounter } from './counters.js';

export interface GateLimits {
  maxConnectionsPerIp: number;
  tlsHandshakeTimeout: number;
}

export type GateVerdict = { admitted: true } | { admitted: false; why: 'per-ip' };

export class AcceptGate {
  private readonly perIp = new OpenCounter();
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(private readonly limits: () => GateLimits) {}

  /**
   * A socket just accepted, before smtp-server sees it: counted until it closes, and timed until
   * its session begins — `expire` ends it then (the caller knows which socket is topmost: one
   * under a TLS wrap in mid-handshake must not be destroyed from below). A refused socket is
   * the caller's to destroy before anything else touches it.
   */
  admit(socket: net.Socket, expire: () => void): GateVerdict {
    const ip = socket.remoteAddress ?? '';
    const key = `${ip}|${socket.remotePort ?? 0}`;
    const open = this.perIp.add(ip);
    socket.once('close', () => {
      this.perIp.remove(ip);
      this.reached(key);
    });
    const l = this.limits();
    if (open > l.maxConnectionsPerIp) return { admitted: false, why: 'per-ip' };
    const timer = setTimeout(expire, l.tlsHandshakeTimeout);
    timer.unref();
    this.pending.set(key, timer);
    return { admitted: true };
  }

  /** The session of `ip`:`port` began (its handshake is done): no deadline any more. */
  sessionBegan(ip: string, port: number): void {
    this.reached(`${ip}|${port}`);
  }

  private reached(key: string): void {
    const t = this.pending.get(key);
    if (t) clearTimeout(t);
    this.pending.delete(key);
  }
}
