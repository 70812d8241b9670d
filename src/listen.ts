/**
 * Binding a listener, for every listener the gateway has (SMTP, admin, and the MTA fronts): a
 * bind that fails is one clear error naming the config key and the address, e.g.
 * `admin.listen 127.0.0.1:8025: address already in use`.
 */
import type net from 'node:net';
import type { HostPort } from './config/types.js';
import { formatHostPort } from './config/values.js';
import { ListenError } from './errors.js';

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'no such address on this host',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EPERM: 'permission denied',
};

/** Listens on `at`; rejects with a ListenError naming `key` (e.g. "server.listen") and the address. */
export function listenOn(server: net.Server, at: HostPort, key: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const reason = (err.code && REASONS[err.code]) ?? err.message;
      reject(new ListenError(`${key} ${formatHostPort(at)}: ${reason}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}
