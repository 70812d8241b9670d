/**
 * The DATA / BDAT pump: a message stream from smtp-server re-encoded into a sink (a backend
 * connection, a file) with backpressure both ways, and the ways a transfer breaks off.
 */
import type { Readable } from 'node:stream';
import type { SmtpReply } from './reply.js';
import type { DataEncoder } from './data-normalize.js';

/** The message stream ended without 'end' (client vanished) or errored. */
export class MessageStreamError extends Error {}
/** The backend refused a BDAT chunk before the last one. */
export class ChunkRefusedError extends Error {
  constructor(readonly reply: SmtpReply) {
    super('backend refused a BDAT chunk');
  }
}
/** smtp-server flagged the message as over the size limit. */
export class MessageTooBigError extends Error {}
/** The backend said something while we were still sending the message. */
export class EarlyReplyError extends Error {
  constructor(readonly reply: SmtpReply | undefined) {
    super('backend replied before the end of the message');
  }
}

export function sizeExceeded(message: NodeJS.ReadableStream): boolean {
  return (message as { sizeExceeded?: unknown }).sizeExceeded === true;
}

export function drainMessage(message: NodeJS.ReadableStream): void {
  const r = message as Partial<Readable>;
  if (r.destroyed === true || r.readableEnded === true) return;
  message.resume();
}

/** Encoded bytes gathered before a write while the message is still arriving. */
export const FLUSH_BYTES = 64 * 1024;

/**
 * Encodes prefix + message with `encoder` into `sink`, with backpressure both ways. Resolves
 * once everything the encoder produced (its terminator included) went through the sink; the
 * sink's final call, after the message ended, has `last` set (its chunk may be empty).
 *
 * Output is gathered and written once per event-loop turn (or every FLUSH_BYTES), so a small
 * message — prefix, body and terminator — goes out in one write. Rejects with
 * MessageStreamError if the message did not end normally; the terminator is then never
 * produced, and the rest of the message is drained so smtp-server can finish reading it.
 */
export function pumpMessage(
  message: NodeJS.ReadableStream,
  prefix: string,
  encoder: DataEncoder,
  sink: (chunk: Buffer, last: boolean) => Promise<void> | undefined,
  check?: () => void,
): Promise<void> {
  const r = message as Readable;
  return new Promise<void>((resolve, reject) => {
    let parts: Buffer[] = [];
    let size = 0;
    let ended = false;
    let writing = false;
    let settled = false;
    let scheduled: NodeJS.Immediate | undefined;

    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (scheduled) clearImmediate(scheduled);
      r.removeListener('data', onData);
      r.removeListener('end', onEnd);
      r.removeListener('error', onError);
      r.removeListener('close', onClose);
      if (err === undefined) {
        resolve();
        return;
      }
      drainMessage(message);
      reject(err);
    };
    const gather = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      parts.push(chunk);
      size += chunk.length;
    };
    /** Hands what was gathered to the sink; once ended, the final call has last = true (even when empty). */
    const flush = (): void => {
      scheduled = undefined;
      if (settled || writing) return;
      if (size === 0 && !ended) return;
      const last = ended;
      const chunk = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
      parts = [];
      size = 0;
      let pending: Promise<void> | undefined;
      try {
        check?.();
        pending = sink(chunk, last);
      } catch (err) {
        settle(err);
        return;
      }
      if (!pending) {
        if (last) settle();
        return;
      }
      writing = true;
      if (!last) r.pause();
      pending.then(
        () => {
          writing = false;
          if (settled) return;
          if (last) settle();
          else if (ended) flush();
          else r.resume();
        },
        (err: unknown) => settle(err),
      );
    };
    const onData = (chunk: Buffer | string): void => {
      if (sizeExceeded(message)) {
        settle(new MessageTooBigError('message size limit exceeded'));
        return;
      }
      gather(encoder.encodeChunk(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk));
      if (size >= FLUSH_BYTES) flush();
      else scheduled ??= setImmediate(flush);
    };
    const onEnd = (): void => {
      if (sizeExceeded(message)) {
        settle(new MessageTooBigError('message size limit exceeded'));
        return;
      }
      ended = true;
      gather(encoder.finish());
      if (scheduled) clearImmediate(scheduled);
      flush();
    };
    const onError = (err: Error): void => settle(new MessageStreamError(`message stream failed: ${err.message}`, { cause: err }));
    const onClose = (): void => {
      if (!ended) settle(new MessageStreamError('message stream closed before its end'));
    };

    if (r.destroyed === true && r.readableEnded !== true) {
      settle(new MessageStreamError('message stream closed before its end'));
      return;
    }
    if (prefix.length > 0) gather(encoder.encodeChunk(Buffer.from(/[\r\n]$/.test(prefix) ? prefix : `${prefix}\r\n`, 'utf8')));
    r.on('data', onData);
    r.once('end', onEnd);
    r.on('error', onError);
    r.once('close', onClose);
  });
}
