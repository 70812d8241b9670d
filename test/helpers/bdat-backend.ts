/**
 * A backend MTA that offers CHUNKING (RFC 3030) next to DATA — smtp-server has no BDAT, so
 * this one is written out on a raw socket. It records every command line and every message
 * with how it arrived (BDAT chunk sizes, or DATA).
 */
import net, { type AddressInfo } from 'node:net';

export interface BdatMessage {
  from: string;
  to: string[];
  data: Buffer;
  via: 'bdat' | 'data';
  /** Sizes of the BDAT chunks, LAST included. */
  chunks: number[];
}

export interface BdatBackendOptions {
  /** Offer CHUNKING in the EHLO reply (default true). */
  chunking?: boolean;
  /**
   * A reply line (without CRLF) for the n-th BDAT chunk of a transaction (0-based) instead of
   * the default 250; undefined keeps the default.
   */
  bdatReply?: (index: number, last: boolean) => string | undefined;
  /** Drop the connection once this many bytes of BDAT payload arrived in a transaction. */
  closeAfterBytes?: number;
  /**
   * Wait this long before the final reply to a message (BDAT LAST, or the end of DATA), and
   * keep the message only if the connection is still open then — a backend that commits when
   * it answers.
   */
  holdFinalMs?: number;
}

export interface BdatBackend {
  port: number;
  commands: string[];
  messages: BdatMessage[];
  connections: number;
  close(): Promise<void>;
}

const REJECTED_PREFIX = 'unknown';

export async function startBdatBackend(opts: BdatBackendOptions = {}): Promise<BdatBackend> {
  const sockets = new Set<net.Socket>();
  const b: BdatBackend = { port: 0, commands: [], messages: [], connections: 0, close: async () => {} };
  const server = net.createServer((sock) => {
    b.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.write('220 bdat.test ESMTP\r\n');
    let buf = Buffer.alloc(0);
    let from: string | undefined;
    let to: string[] = [];
    let parts: Buffer[] = [];
    let chunkSizes: number[] = [];
    let payloadBytes = 0;
    /** Bytes still to read for the current BDAT chunk, and whether it is the last. */
    let want = 0;
    let wantLast = false;
    let inData = false;
    const reset = (): void => {
      from = undefined;
      to = [];
      parts = [];
      chunkSizes = [];
      payloadBytes = 0;
    };
    const endChunk = (): void => {
      const index = chunkSizes.length - 1;
      const custom = opts.bdatReply?.(index, wantLast);
      if (custom !== undefined) {
        sock.write(`${custom}\r\n`);
        if (/^[45]/.test(custom)) reset(); // a refused chunk discards the message (RFC 3030 §2)
        return;
      }
      if (!wantLast) {
        sock.write(`250 2.0.0 ${chunkSizes[index]} octets received\r\n`);
        return;
      }
      commit({ from: from ?? '', to, data: Buffer.concat(parts), via: 'bdat', chunks: chunkSizes });
      reset();
    };
    /** Keeps the message and answers 250, at once or after holdFinalMs if still connected. */
    const commit = (m: BdatMessage): void => {
      const go = (): void => {
        if (sock.destroyed) return;
        b.messages.push(m);
        sock.write(`250 2.0.0 Ok: queued as ${m.via.toUpperCase()}${b.messages.length}\r\n`);
      };
      if (opts.holdFinalMs === undefined) go();
      else setTimeout(go, opts.holdFinalMs);
    };
    const onLine = (line: string): void => {
      b.commands.push(line);
      const verb = line.split(' ')[0]!.toUpperCase();
      if (verb === 'EHLO') {
        sock.write(`250-bdat.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n${opts.chunking === false ? '' : '250-CHUNKING\r\n'}250 SIZE 10485760\r\n`);
      } else if (verb === 'MAIL') {
        reset();
        from = /<([^>]*)>/.exec(line)?.[1] ?? '';
        sock.write('250 2.1.0 Ok\r\n');
      } else if (verb === 'RCPT') {
        const rcpt = /<([^>]*)>/.exec(line)?.[1] ?? '';
        if (rcpt.startsWith(REJECTED_PREFIX)) sock.write('550 5.1.1 No such user here\r\n');
        else {
          to.push(rcpt);
          sock.write('250 2.1.5 Ok\r\n');
        }
      } else if (verb === 'BDAT') {
        const m = /^BDAT (\d+)( LAST)?$/i.exec(line);
        if (!m) {
          sock.write('501 5.5.4 Syntax: BDAT size [LAST]\r\n');
          return;
        }
        want = Number(m[1]);
        wantLast = m[2] !== undefined;
        chunkSizes.push(want);
        if (want === 0) endChunk();
      } else if (verb === 'DATA') {
        inData = true;
        sock.write('354 End data with <CR><LF>.<CR><LF>\r\n');
      } else if (verb === 'RSET') {
        reset();
        sock.write('250 2.0.0 Ok\r\n');
      } else if (verb === 'QUIT') {
        sock.end('221 2.0.0 Bye\r\n');
      } else sock.write('250 2.0.0 Ok\r\n');
    };
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (want > 0) {
          const take = Math.min(want, buf.length);
          if (take === 0) return;
          parts.push(buf.subarray(0, take));
          buf = buf.subarray(take);
          want -= take;
          payloadBytes += take;
          if (opts.closeAfterBytes !== undefined && payloadBytes >= opts.closeAfterBytes) {
            sock.destroy();
            return;
          }
          if (want === 0) endChunk();
          continue;
        }
        if (inData) {
          const text = Buffer.concat([Buffer.from('\r\n'), buf]).toString('latin1');
          const end = text.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const body = text.slice(2, end + 2).replace(/^\.\./gm, '.');
          buf = buf.subarray(end + 3);
          inData = false;
          commit({ from: from ?? '', to, data: Buffer.from(body, 'latin1'), via: 'data', chunks: [] });
          reset();
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 2);
        onLine(line);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  b.port = (server.address() as AddressInfo).port;
  b.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return b;
}
