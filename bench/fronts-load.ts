/**
 * The simulated MTAs of the fronts benchmark (they run in a child process, so that on a 2-core
 * machine the MTA side gets one core and the server side the other). Lean on purpose: requests
 * and packets are encoded once up front with the codecs' encoders, replies are only framed, so
 * the client side does as little as it can and the figures measure the servers.
 *
 * - policy: each connection is one smtpd process of a Postfix; it asks about SMTP sessions one
 *   after another (CONNECT, EHLO, MAIL, RCPT, DATA, END-OF-MESSAGE, from 4,096 client addresses)
 *   and expects DUNNO to each request.
 * - milter: each session is one MTA connection, as Postfix opens one per SMTP session:
 *   negotiation, then CONNECT … end of message (macros as Postfix sends them), ABORT, QUIT;
 *   every reply must be SMFIR_CONTINUE.
 * - idle: opens n connections (milter: negotiated; policy: one request answered) and holds them.
 */
import net from 'node:net';
import { encodeCommand } from '../src/milter/codec.js';
import { SMFIR, type MilterCommand } from '../src/milter/protocol.js';
import { MilterReplyDecoder } from '../src/milter/reply-decoder.js';
import { encodePolicyRequest } from '../src/policy-service/request.js';
import { POSTFIX_OFFER, policyRequest } from './mta-client.js';

export const SOURCES = 4_096;

export interface LoadSpec {
  kind: 'milter' | 'policy';
  port: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  /** Milter: sessions completed; policy: requests answered. */
  done: number;
  failures: number;
  elapsedMs: number;
  reasons: string[];
}

export function sourceAddress(i: number): string {
  const n = i % SOURCES;
  return `198.18.${n >>> 8}.${n & 255}`;
}

const enc = (c: MilterCommand): Buffer => encodeCommand(c);
const macro = (command: string, pairs: Array<[string, string]>): Buffer => enc({ type: 'macro', command, macros: new Map(pairs) });

/** Per source: the packets of one milter session, each a write that waits for one reply (null: no reply). */
function milterScript(i: number): Array<[Buffer, boolean]> {
  const ip = sourceAddress(i);
  return [
    [enc({ type: 'optneg', ...POSTFIX_OFFER }), true],
    [Buffer.concat([macro('C', [['j', 'mta.bench'], ['{daemon_name}', 'smtpd']]), enc({ type: 'connect', hostname: `[${ip}]`, family: 'ipv4', port: 1024 + (i % 60000), address: ip })]), true],
    [enc({ type: 'helo', name: 'client.bench.example' }), true],
    [Buffer.concat([macro('M', [['i', 'QID'], ['{mail_addr}', 'a@bench.example']]), enc({ type: 'mail', sender: '<a@bench.example>', args: ['SIZE=1024'] })]), true],
    [Buffer.concat([macro('R', [['{rcpt_addr}', 'b@bench.example'], ['{rcpt_mailer}', 'smtp']]), enc({ type: 'rcpt', recipient: '<b@bench.example>', args: [] })]), true],
    [enc({ type: 'data' }), true],
    [enc({ type: 'eom' }), true],
    [Buffer.concat([enc({ type: 'abort' }), enc({ type: 'quit' })]), false],
  ];
}

/** Per source: the requests of one SMTP session as Postfix asks them. */
function policyScript(i: number): Buffer[] {
  const ip = sourceAddress(i);
  const port = 1024 + (i % 60000);
  const inst = { instance: `b.${i.toString(16)}` };
  const ask = (state: string, extra: Record<string, string | number> = {}) =>
    encodePolicyRequest(Object.entries(policyRequest(state, ip, { client_port: port, ...extra })).map(([k, v]) => [k, String(v)] as const));
  return [
    ask('CONNECT'),
    ask('EHLO'),
    ask('MAIL', { sender: 'a@bench.example', size: 1024 }),
    ask('RCPT', { sender: 'a@bench.example', recipient: 'b@bench.example', ...inst }),
    ask('DATA', { sender: 'a@bench.example', recipient_count: 1, ...inst }),
    ask('END-OF-MESSAGE', { sender: 'a@bench.example', recipient_count: 1, size: 1100, ...inst }),
  ];
}

/** Scripts are built once per source and reused. */
const milterScripts: Array<Array<[Buffer, boolean]>> = [];
const policyScripts: Buffer[][] = [];
const milterFor = (i: number) => (milterScripts[i % SOURCES] ??= milterScript(i % SOURCES));
const policyFor = (i: number) => (policyScripts[i % SOURCES] ??= policyScript(i % SOURCES));

export function runLoad(spec: LoadSpec, ms: number, counter: { next: number }): Promise<LoadResult> {
  const res: LoadResult = { done: 0, failures: 0, elapsedMs: 0, reasons: [] };
  const t0 = performance.now();
  const deadline = t0 + ms;
  let active = spec.concurrency;
  const fail = (reason: string): void => {
    res.failures++;
    if (res.reasons.length < 5 && !res.reasons.includes(reason)) res.reasons.push(reason);
  };
  return new Promise<LoadResult>((resolve) => {
    const stop = (): void => {
      if (--active > 0) return;
      res.elapsedMs = performance.now() - t0;
      resolve(res);
    };
    const milterSession = (): void => {
      if (performance.now() >= deadline) return stop();
      const script = milterFor(counter.next++);
      const sock = net.connect(spec.port, '127.0.0.1');
      sock.setNoDelay(true);
      const decoder = new MilterReplyDecoder();
      let step = 0;
      let over = false;
      const end = (ok: boolean, reason?: string): void => {
        if (over) return;
        over = true;
        sock.destroy();
        if (ok) res.done++;
        else fail(reason ?? `milter step ${step}`);
        milterSession();
      };
      const send = (): void => {
        const [buf, waits] = script[step]!;
        sock.write(buf);
        if (!waits) end(true);
      };
      sock.on('connect', send);
      sock.on('error', (e: NodeJS.ErrnoException) => end(false, `socket ${e.code ?? e.message} at step ${step}`));
      sock.on('close', () => end(false, `closed at step ${step}`));
      sock.on('data', (chunk: Buffer) => {
        for (const r of decoder.push(chunk)) {
          if (r.command !== (step === 0 ? SMFIR.OPTNEG : SMFIR.CONTINUE)) return end(false, `step ${step}: reply ${JSON.stringify(r.command)}`);
          step++;
          send();
        }
      });
    };
    const policyConnection = (): void => {
      const sock = net.connect(spec.port, '127.0.0.1');
      sock.setNoDelay(true);
      sock.setEncoding('latin1');
      let script = policyFor(counter.next++);
      let step = 0;
      let buf = '';
      let over = false;
      const end = (reason?: string): void => {
        if (over) return;
        over = true;
        sock.destroy();
        if (reason) fail(reason);
        stop();
      };
      sock.on('connect', () => sock.write(script[0]!));
      sock.on('error', (e: NodeJS.ErrnoException) => end(`socket ${e.code ?? e.message}`));
      sock.on('close', () => end('closed'));
      sock.on('data', (d: string) => {
        buf += d;
        for (let at = buf.indexOf('\n\n'); at >= 0; at = buf.indexOf('\n\n')) {
          const answer = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (answer !== 'action=DUNNO') fail(`answer ${answer.slice(0, 80)}`);
          else res.done++;
          if (performance.now() >= deadline) return end();
          if (++step === script.length) {
            script = policyFor(counter.next++);
            step = 0;
          }
          sock.write(script[step]!);
        }
      });
    };
    for (let c = 0; c < spec.concurrency; c++) (spec.kind === 'milter' ? milterSession : policyConnection)();
  });
}

/** Opens `n` idle MTA connections (milter: negotiated; policy: one request answered); returns a closer. */
export async function openIdle(kind: 'milter' | 'policy', port: number, n: number): Promise<() => void> {
  const sockets: net.Socket[] = [];
  const one = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      sockets.push(sock);
      sock.once('error', reject);
      sock.once('connect', () => sock.write(kind === 'milter' ? milterFor(i)[0]![0] : policyFor(i)[0]!));
      sock.once('data', () => resolve());
    });
  for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => one(i + j)));
  return () => {
    for (const s of sockets) s.destroy();
  };
}
