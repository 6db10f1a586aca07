// The listeners' lifecycle: start (one smtp-server per listener, behind a PROXY-reading front
// where the policy says so), reload (certificates and limits swapped in place), stop (drain,
// then 421). The session hooks are session.ts's; nothing here decides about mail.
import net from 'node:net';
import { Resolver } from 'node:dns';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { replies } from '../policy/replies.js';
import type { ListenerSettings, Policy } from '../policy/types.js';
import { smallestContainingRange, parseIp } from '../policy/match.js';
import { readProxyHeader } from './proxy.js';
import { MODERN_CIPHERS, SECURE_OPTIONS, readTlsMaterial, trustClientCas, type TlsMaterial } from './listener-tls.js';
import { closeOpenSessions, closeSession, endPendingSocket, installReplyPatch, keepDefaultContextOnSni, openSessionCount, setSessionIdleTimeout } from './smtp-server-adapter.js';
import { SessionHooks, type SessionControl, type SessionDeps } from './session.js';
import { AcceptGate } from './accept-gate.js';
import type { TrustAnchor } from '../tls/anchors.js';

export type GatewayDeps = SessionDeps;

installReplyPatch({ tooBig: replies.tooBig(), requireTlsWithoutTls: replies.requireTlsWithoutTls() });

const isLoopback = (ip: string): boolean => ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');

interface Running {
  listener: ListenerSettings;
  server: SMTPServer;
  port: number;
  net: net.Server;
}

export class GatewayServer {
  private servers: Running[] = [];
  private resolver: Resolver;
  private readonly sessions: SessionHooks;
  private anchors: TrustAnchor[] = [];
  private readonly gate: AcceptGate;

  constructor(private readonly deps: GatewayDeps) {
    this.resolver = this.makeResolver(deps.getPolicy());
    this.gate = new AcceptGate(() => deps.getPolicy().gateway.limits);
    const control: SessionControl = {
      began: (ip, port) => this.gate.sessionBegan(ip, port),
      setIdleTimeout: (id, ms) => this.servers.some((s) => setSessionIdleTimeout(s.server, id, ms)),
      close: (id, reply) => this.servers.some((s) => closeSession(s.server, id, reply)),
    };
    this.sessions = new SessionHooks(deps, (port) => this.servers.find((s) => s.port === port)?.listener.name ?? String(port), () => this.anchors, control);
  }

  private makeResolver(policy: Policy): Resolver {
    const r = new Resolver({ timeout: 1000, tries: 1 });
    if (policy.gateway.dns.servers.length) r.setServers(policy.gateway.dns.servers);
    return r;
  }

  get ports(): Array<{ name: string; address: string; port: number }> {
    return this.servers.map((s) => ({ name: s.listener.name, address: s.listener.address, port: s.port }));
  }

  async start(): Promise<void> {
    const policy = this.deps.getPolicy();
    const material = readTlsMaterial(policy);
    this.anchors = material.anchors;
    for (const listener of policy.gateway.listeners) {
      const server = new SMTPServer(this.options(policy, listener, material));
      keepDefaultContextOnSni(server);
      trustClientCas(server, material);
      server.on('error', (err: Error & { remoteAddress?: string; meta?: { remoteAddress?: string } }) => {
        // A failed handshake or a broken client socket carries the client's address: the
        // client's problem, not ours. An error without one is the listener's.
        const ip = err.remoteAddress ?? err.meta?.remoteAddress;
        if (ip) this.deps.log.info({ event: 'client-error', listener: listener.name, ip, err: err.message.split('\n')[0] }, 'client connection failed');
        else this.deps.log.error({ event: 'listener-error', listener: listener.name, err: err.message }, 'listener error');
      });
      // Implicit TLS: sockets are counted per IP and timed from accept (accept-gate.ts). smtp-server's
      // own 'connection' handler runs only for admitted ones: a refused socket is closed before
      // anything wraps it in TLS.
      if (listener.implicitTls) {
        const handlers = server.server.listeners('connection') as Array<(socket: net.Socket) => void>;
        server.server.removeAllListeners('connection');
        server.server.on('connection', (socket: net.Socket) => {
          const v = this.gate.admit(socket, () => endPendingSocket(server, socket));
          if (!v.admitted) {
            socket.on('error', () => {});
            socket.destroy();
            this.deps.log.warn({ event: 'refusal', rule: 'throttle', listener: listener.name, ip: socket.remoteAddress, reason: 'connections per IP before the TLS handshake' }, 'connection closed at accept');
            return;
          }
          for (const h of handlers) h.call(server.server, socket);
        });
      }
      const front = listener.proxyProtocol ? this.proxyFront(server, listener) : server.server;
      const port = await new Promise<number>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        front.once('error', onError);
        front.listen(listener.port, listener.address, () => {
          front.off('error', onError);
          resolve((front.address() as net.AddressInfo).port);
        });
      });
      this.servers.push({ listener, server, port, net: front });
      this.deps.log.info({ event: 'listening', listener: listener.name, address: listener.address, port, implicitTls: listener.implicitTls, proxyProtocol: !!listener.proxyProtocol }, `listening on ${listener.address}:${port}`);
    }
  }

  /**
   * A listener behind load balancers: our own TCP server reads the PROXY header (v1 or v2) from
   * trusted peers only, then hands the socket to smtp-server with the client's address.
   */
  private proxyFront(server: SMTPServer, listener: ListenerSettings): net.Server {
    const trusted = listener.proxyProtocol || [];
    return net.createServer((socket) => {
      socket.on('error', () => {});
      const peer = parseIp(socket.remoteAddress ?? '');
      if (!peer || !smallestContainingRange(trusted, peer)) {
        server.connect(socket, {});
        return;
      }
      readProxyHeader(socket, 10_000, (err, source) => {
        if (err) {
          this.deps.log.warn({ event: 'proxy-error', listener: listener.name, peer: socket.remoteAddress, err: err.message }, 'bad PROXY header from a trusted peer');
          socket.destroy();
          return;
        }
        server.connect(socket, source ? { remoteAddress: source.remoteAddress, remotePort: source.remotePort } : {});
      });
    });
  }

  /** A new valid policy: new sessions use it; certificates and limits are swapped in place. */
  reload(policy: Policy): void {
    const material = readTlsMaterial(policy);
    this.anchors = material.anchors;
    this.resolver = this.makeResolver(policy); // reverse lookups follow gateway.dns.servers
    for (const s of this.servers) {
      s.server.updateSecureContext({ key: material.key, cert: material.cert, minVersion: policy.gateway.tls.minVersion });
      trustClientCas(s.server, material);
      s.server.options.size = policy.gateway.limits.maxMessageSize;
    }
    const key = (l: ListenerSettings): string => `${l.name}@${l.address}:${l.port}/${l.implicitTls}/${!!l.proxyProtocol}`;
    if (policy.gateway.listeners.map(key).join(',') !== this.servers.map((s) => key(s.listener)).join(',')) this.deps.log.warn({ event: 'reload-listeners' }, 'listener changes take effect at the next restart');
  }

  /** Stops accepting; sessions in progress get up to `graceMs` to finish, then get 421. */
  async stop(graceMs = 10_000): Promise<void> {
    for (const { net: front } of this.servers) front.close();
    const until = Date.now() + graceMs;
    while (this.sessionCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const { server } of this.servers) closeOpenSessions(server, replies.shuttingDown());
    this.servers = [];
  }

  get sessionCount(): number {
    return this.servers.reduce((n, s) => n + openSessionCount(s.server), 0);
  }

  private options(policy: Policy, listener: ListenerSettings, material: TlsMaterial): SMTPServerOptions {
    const g = policy.gateway;
    return {
      name: g.hostname,
      banner: 'connector-gateway',
      secure: listener.implicitTls,
      key: material.key,
      cert: material.cert,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: g.tls.minVersion,
      ciphers: MODERN_CIPHERS,
      honorCipherOrder: true,
      secureOptions: SECURE_OPTIONS,
      size: g.limits.maxMessageSize,
      // No maxClients: connectionLimit (policy/limits.ts) decides, counted across workers, with
      // the reserved connections and its enhanced code; implicit-TLS sockets are gated per IP.
      authOptional: true,
      disabledCommands: ['AUTH'],
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false, // RFC 3461: NOTIFY, ORCPT, RET, ENVID are kept with the message and honoured
      hideREQUIRETLS: false, // RFC 8689: offered after STARTTLS; kept in the envelope, honoured by delivery
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      socketTimeout: g.limits.idleTimeout,
      closeTimeout: 30_000,
      logger: false,
      resolver: {
        reverse: (ip: string, cb: (err: Error | null, names?: string[]) => void) => {
          if (isLoopback(ip)) return cb(null, ['localhost']);
          this.resolver.reverse(ip, (err, names) => cb(err, names));
        },
      },
      ...this.sessions.hooks(),
    } as SMTPServerOptions;
  }
}
