/**
 * The benchmarks' do-nothing SMTP responder (the baseline, and the gateway's backend), in this
 * process or in a process of its own (this same compiled file, started with
 * AUDITGATE_BENCH_BACKEND), as a backend MTA would be.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

/** Set (to "chunking" or "data") in the process that hosts the gateway's backend responder. */
export const BACKEND_ENV = 'AUDITGATE_BENCH_BACKEND';

// ---------------------------------------------------------------------------------------------
// The do-nothing responder

export interface Responder {
  port: number;
  close(): Promise<void>;
}

/**
 * 220 greeting, 250 to EHLO / MAIL / RCPT (and anything else), 354 to DATA, 250 after the
 * "\r\n.\r\n" terminator (found across chunk boundaries), 221 to QUIT then close. With
 * `chunking` it also offers CHUNKING and answers "BDAT n [LAST]" with 250 after n bytes; with
 * `tls` (PEM key and certificate) it offers STARTTLS and goes on inside TLS after its 220.
 */
export async function startResponder(opts: { chunking?: boolean; tls?: { key: string; cert: string } } = {}): Promise<Responder> {
  const ehloFor = (secure: boolean): string =>
    `250-sink.bench\r\n${opts.tls && !secure ? '250-STARTTLS\r\n' : ''}${opts.chunking ? '250-8BITMIME\r\n250 CHUNKING\r\n' : '250 8BITMIME\r\n'}`;
  const context = opts.tls ? tls.createSecureContext(opts.tls) : undefined;
  /** The SMTP dialog on a socket (the TCP one, or the TLS one after STARTTLS). */
  const dialog = (s: net.Socket, secure: boolean): void => {
    const ehlo = ehloFor(secure);
    s.setEncoding('latin1');
    let buf = '';
    let inData = false;
    /** BDAT bytes still to skip (latin1: one char per byte). */
    let skip = 0;
    s.on('data', (d: string) => {
      buf += d;
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, buf.length);
          buf = buf.slice(n);
          skip -= n;
          if (skip > 0) return;
          s.write('250 2.0.0 Ok\r\n');
          continue;
        }
        if (inData) {
          const i = buf.indexOf('\r\n.\r\n');
          if (i < 0) {
            // keep just enough to find a terminator split over chunks
            if (buf.length > 4) buf = buf.slice(-4);
            return;
          }
          buf = buf.slice(i + 5);
          inData = false;
          s.write('250 2.0.0 Ok: queued\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) {
          if (buf.length > 4096) s.destroy();
          return;
        }
        const line = buf.slice(0, nl);
        const verb = line.slice(0, 4).toUpperCase();
        buf = buf.slice(nl + 2);
        if (verb === 'DATA') {
          inData = true;
          // the DATA line's CRLF starts the terminator of an empty body
          buf = `\r\n${buf}`;
          s.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        } else if (verb === 'BDAT' && opts.chunking) {
          skip = Number(line.split(' ')[1]);
          if (!(skip > 0)) {
            skip = 0;
            s.write('250 2.0.0 Ok\r\n');
          }
        } else if (verb === 'QUIT') {
          s.end('221 2.0.0 Bye\r\n');
          return;
        } else if (verb === 'EHLO') {
          s.write(ehlo);
        } else if (verb === 'STAR' && context && !secure) {
          s.removeAllListeners('data');
          s.write('220 2.0.0 Ready to start TLS\r\n');
          const secureSocket = new tls.TLSSocket(s, { isServer: true, secureContext: context });
          secureSocket.on('error', () => {});
          dialog(secureSocket, true);
          return;
        } else {
          s.write('250 2.0.0 Ok\r\n');
        }
      }
    });
  };
  return serveSockets((s) => {
    s.write('220 sink.bench ESMTP\r\n');
    dialog(s, false);
  });
}

export interface SocketServer extends Responder {
  /** Connections open on the server side. */
  open(): number;
}

/** A loopback listener for the benchmarks' responders: `handler` gets each connection (errors ignored, no Nagle). */
export async function serveSockets(handler: (sock: net.Socket) => void): Promise<SocketServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.setNoDelay(true);
    handler(s);
  });
  server.maxConnections = 100_000;
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}


/** Set (to JSON {key, cert} PEM paths) in a backend process that offers STARTTLS. */
export const BACKEND_TLS_ENV = 'AUDITGATE_BENCH_BACKEND_TLS';

export async function backendMain(): Promise<void> {
  const tlsFiles = process.env[BACKEND_TLS_ENV] ? (JSON.parse(process.env[BACKEND_TLS_ENV]) as { key: string; cert: string }) : undefined;
  const tlsPem = tlsFiles ? { key: fs.readFileSync(tlsFiles.key, 'utf8'), cert: fs.readFileSync(tlsFiles.cert, 'utf8') } : undefined;
  const r = await startResponder({ chunking: process.env[BACKEND_ENV] === 'chunking', ...(tlsPem ? { tls: tlsPem } : {}) });
  process.send!({ port: r.port });
  process.on('disconnect', () => process.exit(0));
}

if (process.env[BACKEND_ENV] && process.send) void backendMain();

/**
 * The gateway's backend: a responder in a process of its own, as a backend MTA would be, so
 * its work is not charged to the gateway's process.
 */
export function backendProcess(chunking: boolean, tlsFiles?: { key: string; cert: string }): Promise<{ port: number; close(): void }> {
  const env: NodeJS.ProcessEnv = { ...process.env, [BACKEND_ENV]: chunking ? 'chunking' : 'data' };
  if (tlsFiles) env[BACKEND_TLS_ENV] = JSON.stringify(tlsFiles);
  const child = fork(fileURLToPath(import.meta.url), [], { env, execArgv: [], stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) =>
      resolve({
        port: m.port,
        close: () => {
          if (child.connected) child.disconnect();
        },
      }),
    );
    child.once('exit', (code) => reject(new Error(`bench backend process exited (${code})`)));
  });
}
