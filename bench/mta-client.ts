/**
 * Simulated MTAs built on the codecs' encoders: a milter client (what Postfix's milter8 does)
 * and a policy-delegation client (what check_policy_service does). Used by the fronts
 * benchmark and by the front tests; every wait is bounded.
 */
import net from 'node:net';
import { encodeCommand } from '../src/milter/codec.js';
import { SMFIR, type MilterCommand } from '../src/milter/protocol.js';
import { MilterReplyDecoder, type MilterReply } from '../src/milter/reply-decoder.js';
import { encodePolicyRequest } from '../src/policy-service/request.js';

export type Target = { port: number; host?: string } | { path: string };

/** What Postfix 3.x offers: version 6, every action, every protocol flag. */
export const POSTFIX_OFFER = { version: 6, actions: 0x1ff, protocol: 0x1fffff } as const;

const WAIT_MS = 15_000;

function open(target: Target): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host ?? '127.0.0.1');
    s.once('connect', () => {
      s.removeListener('error', reject);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Waiters for the next item of a stream, rejected when the connection closes or after `ms`. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: Array<{ resolve(v: T): void; reject(e: Error): void; timer: NodeJS.Timeout }> = [];
  ended = false;

  put(v: T): void {
    const w = this.waiters.shift();
    if (!w) {
      this.items.push(v);
      return;
    }
    clearTimeout(w.timer);
    w.resolve(v);
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error('connection closed before the answer'));
    }
  }

  next(ms = WAIT_MS): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    if (this.ended) return Promise.reject(new Error('connection closed before the answer'));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no answer within ${ms} ms`));
      }, ms);
      this.waiters.push({ resolve, reject, timer });
    });
  }
}

abstract class MtaClient<Answer> {
  protected readonly inbox = new Inbox<Answer>();
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;

  protected constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.inbox.end();
        resolve();
      }),
    );
  }

  get isClosed(): boolean {
    return this.inbox.ended;
  }

  /** Raw bytes (malformed input in tests). */
  send(buf: Buffer | string): void {
    this.socket.write(buf);
  }

  close(): void {
    this.socket.destroy();
  }
}

export class MilterClient extends MtaClient<MilterReply> {
  /** Every reply seen, SMFIR_PROGRESS included. */
  readonly replies: MilterReply[] = [];

  private constructor(socket: net.Socket) {
    super(socket);
    const decoder = new MilterReplyDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const r of decoder.push(chunk)) {
        this.replies.push(r);
        if (r.command !== SMFIR.PROGRESS) this.inbox.put(r);
      }
    });
  }

  static async connect(target: Target): Promise<MilterClient> {
    return new MilterClient(await open(target));
  }

  /** SMFIR_PROGRESS packets seen so far. */
  get progress(): number {
    return this.replies.filter((r) => r.command === SMFIR.PROGRESS).length;
  }

  /** A command the filter answers: its reply (SMFIR_PROGRESS packets are counted, not returned). */
  ask(c: MilterCommand, ms?: number): Promise<MilterReply> {
    this.socket.write(encodeCommand(c));
    return this.inbox.next(ms);
  }

  /** A command without a reply (macros, ABORT, QUIT, QUIT_NC). */
  tell(c: MilterCommand): void {
    this.socket.write(encodeCommand(c));
  }

  negotiate(offer: { version: number; actions: number; protocol: number } = POSTFIX_OFFER): Promise<MilterReply> {
    return this.ask({ type: 'optneg', ...offer });
  }
}

export interface MilterSessionSpec {
  /** ipv4 / ipv6 client address. */
  client: string;
  helo?: string;
  from?: string;
  to?: string[];
  /** Macros Postfix would send at MAIL ({auth_authen}, i). */
  mailMacros?: Record<string, string>;
}

/** One session as Postfix sends it, from CONNECT to end of message; stops at the first refusal. Returns each reply in order. */
export async function milterSession(c: MilterClient, spec: MilterSessionSpec): Promise<MilterReply[]> {
  const out: MilterReply[] = [];
  const step = async (cmd: MilterCommand): Promise<boolean> => {
    const r = await c.ask(cmd);
    out.push(r);
    return r.command === SMFIR.CONTINUE || r.command === SMFIR.ACCEPT;
  };
  c.tell({ type: 'macro', command: 'C', macros: new Map([['j', 'mta.test']]) });
  const family = spec.client.includes(':') ? 'ipv6' : 'ipv4';
  if (!(await step({ type: 'connect', hostname: `[${spec.client}]`, family, port: 40000, address: spec.client }))) return out;
  if (!(await step({ type: 'helo', name: spec.helo ?? 'client.test' }))) return out;
  c.tell({ type: 'macro', command: 'M', macros: new Map(Object.entries(spec.mailMacros ?? { i: 'QID' })) });
  if (!(await step({ type: 'mail', sender: `<${spec.from ?? 'sender@example.org'}>`, args: [] }))) return out;
  for (const to of spec.to ?? ['rcpt@example.net']) {
    c.tell({ type: 'macro', command: 'R', macros: new Map([['{rcpt_mailer}', 'smtp']]) });
    if (!(await step({ type: 'rcpt', recipient: `<${to}>`, args: [] }))) return out;
  }
  if (!(await step({ type: 'data' }))) return out;
  await step({ type: 'eom' });
  c.tell({ type: 'abort' }); // as Postfix does after the end of message
  return out;
}

export class PolicyClient extends MtaClient<string> {
  private constructor(socket: net.Socket) {
    super(socket);
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buf += d;
      for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
        const answer = buf.slice(0, end);
        buf = buf.slice(end + 2);
        this.inbox.put(answer.replace(/^action=/, ''));
      }
    });
  }

  static async connect(target: Target): Promise<PolicyClient> {
    return new PolicyClient(await open(target));
  }

  /** One request; resolves with the action's value ("DUNNO", "OK", "451 4.7.1 …"). */
  ask(attributes: Record<string, string | number>, ms?: number): Promise<string> {
    this.socket.write(encodePolicyRequest(Object.entries(attributes).map(([k, v]) => [k, String(v)] as const)));
    return this.inbox.next(ms);
  }
}

/** The attributes Postfix sends for a stage (smtpd_access_policy). */
export function policyRequest(state: string, client: string, extra: Record<string, string | number> = {}): Record<string, string | number> {
  return { request: 'smtpd_access_policy', protocol_state: state, protocol_name: 'ESMTP', client_address: client, client_name: 'unknown', client_port: 40000, helo_name: 'client.test', ...extra };
}
