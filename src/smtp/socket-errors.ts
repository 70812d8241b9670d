/** Telling a client's own socket trouble from the gateway's faults, and ending a socket politely once. */
import type net from 'node:net';

/** Network errors of a client going away. */
const CLIENT_LEFT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_STREAM_DESTROYED']);

/** 'left': the client went away; 'tls': the client broke a TLS handshake; undefined: something else. */
export function clientFault(err: Error): 'left' | 'tls' | undefined {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CLIENT_LEFT_CODES.has(code)) return 'left';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /SSL routines|TLS/i.test(err.message)) return 'tls';
  return undefined;
}

/** Ends a socket with a last line, once, and destroys it if the client does not close its side. */
export function endOnce(socket: net.Socket, line: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(line);
  setTimeout(() => socket.destroy(), 1000).unref();
}
