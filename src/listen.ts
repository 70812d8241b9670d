/**
 * Binding a listener, for every listener the gateway has (SMTP, admin, and the MTA fronts): a
 * bind that fails is one clear error naming the config key and the address, e.g.
 * `admin.listen 127.0.0.1:8025: address already in use`.
 *
 * A unix-domain socket (`unix:/path`, MTA fronts) replaces a stale socket file a crashed run
 * left behind, but only when nothing answers on it; anything else at that path is an error.
 * The socket is made mode 0660 (owner and group: run auditgate in the MTA's group, or put the
 * socket in a directory of that group). Closing the server removes the file.
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { HostPort, ListenAddress } from './config/types.js';
import { formatListenAddress } from './config/values.js';
import { ListenError } from './errors.js';

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'no such address on this host',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EPERM: 'permission denied',
  ENOENT: 'no such directory',
  ENOTDIR: 'a part of the path is not a directory',
};

/** Mode of a unix-domain socket the gateway listens on. */
export const SOCKET_MODE = 0o660;

/** Listens on `at`; rejects with a ListenError naming `key` (e.g. "server.listen") and the address. */
export async function listenOn(server: net.Server, at: ListenAddress, key: string): Promise<void> {
  const fail = (reason: string, cause?: unknown) => new ListenError(`${key} ${formatListenAddress(at)}: ${reason}`, { cause });
  // In a node:cluster worker the primary binds the shared socket: it cleared a stale file before the workers started.
  if ('path' in at && !cluster.isWorker) await clearStaleSocket(at.path, fail);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      let reason = (err.code && REASONS[err.code]) ?? err.message;
      // libuv reports a missing directory as EACCES too
      if ('path' in at && err.code === 'EACCES') reason = fs.existsSync(path.dirname(at.path)) ? 'permission denied' : 'no such directory';
      reject(fail(reason, err));
    };
    server.once('error', onError);
    const done = (): void => {
      server.removeListener('error', onError);
      resolve();
    };
    if ('path' in at) server.listen(at.path, done);
    else server.listen(at.port, at.host, done);
  });
  if ('path' in at) {
    try {
      fs.chmodSync(at.path, SOCKET_MODE);
    } catch (err) {
      await new Promise<void>((r) => server.close(() => r()));
      throw fail(`cannot set mode ${SOCKET_MODE.toString(8)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
    }
  }
}

/** Before a multi-process gateway's workers listen on `at`: a stale socket file goes, a live one is a ListenError naming `key`. */
export async function clearStaleSocketFor(at: ListenAddress, key: string): Promise<void> {
  if ('path' in at) await clearStaleSocket(at.path, (reason, cause) => new ListenError(`${key} ${formatListenAddress(at)}: ${reason}`, { cause }));
}

/** Removes a socket file nobody answers on; refuses a live socket or a file that is no socket. */
async function clearStaleSocket(file: string, fail: (reason: string, cause?: unknown) => ListenError): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return; // nothing there (a missing directory is reported by the bind)
  }
  if (!st.isSocket()) throw fail('the path exists and is not a socket');
  const answered = await new Promise<boolean>((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw fail('address already in use (a process answers on this socket)');
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(`cannot remove the stale socket: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
}

/** Where a server is bound (port 0 resolved; a unix socket by its path). */
export function boundAddress(server: net.Server): ListenAddress | undefined {
  const a = server.address();
  if (a === null) return undefined;
  if (typeof a === 'string') return { path: a };
  return { host: a.address, port: a.port } satisfies HostPort;
}
