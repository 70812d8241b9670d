/** Relay options for tests that drive the relay directly (no gateway): one plain smtp:// backend unless told otherwise. */
import type { BackendTarget, SmtpRelayOptions } from '../../src/smtp/relay/types.js';

/** smtp://host:port (or smtps:// with implicitTls). */
export function backendTarget(port: number, opts: { host?: string; implicitTls?: boolean } = {}): BackendTarget {
  const host = opts.host ?? '127.0.0.1';
  const scheme = opts.implicitTls ? 'smtps' : 'smtp';
  return { url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`, host, port, implicitTls: opts.implicitTls ?? false };
}

export function smtpRelayOptions(port: number, extra: Partial<Omit<SmtpRelayOptions, 'kind'>> = {}): SmtpRelayOptions {
  return {
    kind: 'smtp',
    backends: [backendTarget(port)],
    strategy: 'failover',
    tls: { mode: 'none' },
    timeoutMs: 5000,
    poolSize: 2,
    hostname: 'gw.test',
    ...extra,
  };
}
