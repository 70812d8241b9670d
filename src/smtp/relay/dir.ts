/**
 * The dir relay: each message becomes an .eml file (envelope headers first), written durably;
 * for trying the gateway out without a backend.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { RelayError } from '../../errors.js';
import { PRIVATE_DIR_MODE, createDurable, type DurableFile } from '../../fs/durable-file.js';
import type { SmtpReply } from './reply.js';
import { CountingRelay, UNSAFE_ADDRESS, invalidAddress, localReply } from './common.js';
import { createDataEncoder } from './data-normalize.js';
import { MessageTooBigError, drainMessage, pumpMessage } from './pump.js';
import { UNLIMITED, type MailFromParams, type RelayCapabilities } from './capabilities.js';
import type { BeginMeta, DirRelayOptions, Relay, RelayAuthResult, RelayStats, RelayTransaction } from './types.js';

export class DirRelay extends CountingRelay implements Relay {
  constructor(readonly opts: DirRelayOptions) {
    super();
  }

  begin(meta: BeginMeta): Promise<RelayTransaction> {
    this.counters.active++;
    this.counters.transactions++;
    return Promise.resolve(new DirTransaction(this, meta));
  }

  /** There is no backend to ask (config refuses server.auth with a dir relay). */
  authenticate(): Promise<RelayAuthResult> {
    return Promise.resolve({ reply: localReply(454, '4.7.0', 'Temporary authentication failure') });
  }

  start(): void {}

  /** A file takes anything: 8-bit, UTF-8 addresses, any size (server.max_message_size bounds it). */
  capabilities(): RelayCapabilities {
    return UNLIMITED;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  stats(): RelayStats {
    return { kind: 'dir', backends: [], idle: 0, ...this.counters };
  }
}

class DirTransaction implements RelayTransaction {
  dataBytes = 0;
  private from: string | undefined;
  private rcpts: string[] = [];
  private done = false;

  constructor(
    private readonly relay: DirRelay,
    private readonly meta: BeginMeta,
  ) {}

  mailFrom(from: string, _params?: MailFromParams): Promise<SmtpReply> {
    this.assertOpen();
    if (UNSAFE_ADDRESS.test(from)) return Promise.resolve(invalidAddress('MAIL'));
    this.from = from;
    this.rcpts = [];
    return Promise.resolve(localReply(250, '2.1.0', 'Ok'));
  }

  rcptTo(to: string): Promise<SmtpReply> {
    this.assertOpen();
    if (this.from === undefined) return Promise.resolve(localReply(503, '5.5.1', 'Error: need MAIL command'));
    if (UNSAFE_ADDRESS.test(to)) return Promise.resolve(invalidAddress('RCPT'));
    this.rcpts.push(to);
    return Promise.resolve(localReply(250, '2.1.5', 'Ok'));
  }

  async data(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply> {
    this.assertOpen();
    this.dataBytes = 0;
    if (this.from === undefined || this.rcpts.length === 0) {
      drainMessage(message);
      return localReply(503, '5.5.1', 'Error: need RCPT command');
    }
    const dir = this.relay.opts.dir;
    const name = `${Date.now()}-${randomBytes(8).toString('hex')}.eml`;
    const final = path.join(dir, name);
    let file: DurableFile | undefined;
    const encoder = createDataEncoder({ dotStuff: false, terminate: false });
    try {
      await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE }); // mail is private: no access for others
      const out = await createDurable(final, { temp: path.join(dir, `.${name}.tmp`) });
      file = out;
      const envelope =
        `X-Envelope-From: <${this.from}>\r\n` + this.rcpts.map((r) => `X-Envelope-To: <${r}>\r\n`).join('');
      const head = Buffer.from(envelope, 'utf8');
      await out.write(head);
      await pumpMessage(message, prefix, encoder, (chunk) => out.write(chunk));
      await out.commit();
      this.dataBytes = head.length + encoder.bytesOut;
      this.relay.countMessage(this.dataBytes);
      this.relay.opts.logger?.debug({ file: final, client: this.meta.clientAddress }, 'message stored');
      return localReply(250, '2.0.0', `Ok: queued as ${name}`);
    } catch (err) {
      drainMessage(message);
      await file?.abort();
      if (err instanceof MessageTooBigError) {
        return localReply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
      }
      this.relay.countFailure();
      this.relay.opts.logger?.warn({ err, dir }, 'could not store message');
      throw new RelayError('Could not store the message, try again later', 451, { cause: err });
    }
  }

  release(): Promise<void> {
    this.end();
    return Promise.resolve();
  }

  abort(): void {
    this.end();
  }

  private end(): void {
    this.from = undefined;
    this.rcpts = [];
    if (this.done) return;
    this.done = true;
    this.relay.transactionEnded();
  }

  private assertOpen(): void {
    if (this.done) throw new RelayError('Relay transaction already ended', 451);
  }
}
