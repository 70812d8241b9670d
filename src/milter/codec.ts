/**
 * Milter v6 wire codec, MTA side of the stream: a streaming decoder of the MTA's commands and
 * the matching encoder (for tests and fake MTAs). Pure: no sockets, no timers.
 *
 * The decoder never throws on input and never buffers more than one packet (4 + maxPacket
 * bytes): a bad length, an unknown command byte or a payload that does not fit its command ends
 * the stream with a MilterProtocolError; the front logs it and closes that MTA connection.
 * Strings are decoded as UTF-8 (invalid bytes become U+FFFD); body chunks stay Buffers.
 */
import net from 'node:net';
import { MilterProtocolError } from '../errors.js';
import { StickyDecoder } from '../sticky-decoder.js';
import { DEFAULT_MAX_PACKET, SMFIA, SMFIC, type ConnectFamily, type MilterCommand } from './protocol.js';

export interface MilterDecoderOptions {
  /** Largest accepted length field (command byte + data). Default 65536: a full body chunk. */
  maxPacket?: number;
}

export interface MilterDecodeResult {
  /** Every command completed by this push, in order (also those before an error). */
  messages: MilterCommand[];
  /** Set once the stream is bad; the decoder then stays failed and drops further input. */
  error?: MilterProtocolError;
}

export class MilterDecoder extends StickyDecoder<MilterProtocolError> {
  readonly maxPacket: number;
  private chunks: Buffer[] = [];
  private size = 0;
  private need: number | undefined; // length of the packet being collected, once its header is in

  constructor(opts: MilterDecoderOptions = {}) {
    super();
    const max = opts.maxPacket ?? DEFAULT_MAX_PACKET;
    if (!Number.isInteger(max) || max < 1 || max > 0x7fffffff) throw new RangeError(`maxPacket must be an integer in 1..2^31-1, got ${max}`);
    this.maxPacket = max;
  }

  /** Bytes held for an unfinished packet (at most 4 + maxPacket). */
  get buffered(): number {
    return this.size;
  }

  push(chunk: Buffer): MilterDecodeResult {
    const messages: MilterCommand[] = [];
    if (this.error) return { messages, error: this.error };
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
    // Each turn consumes a header or a whole packet, so the loop ends within size/4 turns.
    for (;;) {
      if (this.need === undefined) {
        if (this.size < 4) break;
        const len = this.take(4).readUInt32BE(0);
        if (len === 0) return { messages, error: this.fail(new MilterProtocolError('empty-packet', 'packet length 0')) };
        if (len > this.maxPacket) return { messages, error: this.fail(new MilterProtocolError('packet-too-large', `packet length ${len} exceeds ${this.maxPacket}`)) };
        this.need = len;
      }
      if (this.size < this.need) break;
      const packet = this.take(this.need);
      this.need = undefined;
      const decoded = decodePacket(packet[0]!, packet.subarray(1));
      if (decoded instanceof MilterProtocolError) return { messages, error: this.fail(decoded) };
      messages.push(decoded);
    }
    return { messages };
  }

  protected override unfinished(): boolean {
    return this.size > 0 || this.need !== undefined;
  }

  protected override truncated(): MilterProtocolError {
    return new MilterProtocolError('truncated', `stream ended inside a packet (${this.size} bytes held)`);
  }

  protected override drop(): void {
    this.chunks = [];
    this.size = 0;
    this.need = undefined;
  }

  /** Removes and returns the first n bytes (n <= size). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.size -= n;
    return out;
  }
}

const malformed = (cmd: string, why: string) => new MilterProtocolError('malformed', `${cmdName(cmd)}: ${why}`);

function cmdName(cmd: string): string {
  for (const [name, code] of Object.entries(SMFIC)) if (code === cmd) return `SMFIC_${name}`;
  return JSON.stringify(cmd);
}

/**
 * Splits NUL-terminated strings. Empty data is no strings; data not ending in NUL is null.
 * Strings are UTF-8.
 */
function cStrings(data: Buffer): string[] | null {
  if (data.length === 0) return [];
  if (data[data.length - 1] !== 0) return null;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0) {
      out.push(data.toString('utf8', start, i));
      start = i + 1;
    }
  }
  return out;
}

/** Decodes one packet's payload; never throws. */
export function decodePacket(cmdByte: number, data: Buffer): MilterCommand | MilterProtocolError {
  const cmd = String.fromCharCode(cmdByte);
  const strings = (n: number): string[] | MilterProtocolError => {
    const s = cStrings(data);
    if (s === null) return malformed(cmd, 'string without NUL terminator');
    if (s.length !== n) return malformed(cmd, `expected ${n} string(s), got ${s.length}`);
    return s;
  };
  const none = (type: 'data' | 'eoh' | 'abort' | 'quit' | 'quit_nc'): MilterCommand | MilterProtocolError =>
    data.length === 0 ? { type } : malformed(cmd, `unexpected ${data.length} data byte(s)`);

  switch (cmd) {
    case SMFIC.OPTNEG:
      if (data.length !== 12) return malformed(cmd, `expected 12 data bytes, got ${data.length}`);
      return { type: 'optneg', version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8) };
    case SMFIC.MACRO: {
      if (data.length < 1) return malformed(cmd, 'missing command character');
      const s = cStrings(data.subarray(1));
      if (s === null) return malformed(cmd, 'string without NUL terminator');
      if (s.length % 2 !== 0) return malformed(cmd, 'macro name without a value');
      const macros = new Map<string, string>();
      for (let i = 0; i < s.length; i += 2) macros.set(s[i]!, s[i + 1]!);
      return { type: 'macro', command: String.fromCharCode(data[0]!), macros };
    }
    case SMFIC.CONNECT:
      return decodeConnect(data);
    case SMFIC.HELO: {
      const s = strings(1);
      return s instanceof MilterProtocolError ? s : { type: 'helo', name: s[0]! };
    }
    case SMFIC.MAIL:
    case SMFIC.RCPT: {
      const s = cStrings(data);
      if (s === null) return malformed(cmd, 'string without NUL terminator');
      if (s.length === 0) return malformed(cmd, 'missing address');
      const [addr, ...args] = s as [string, ...string[]];
      return cmd === SMFIC.MAIL ? { type: 'mail', sender: addr, args } : { type: 'rcpt', recipient: addr, args };
    }
    case SMFIC.HEADER: {
      const s = strings(2);
      return s instanceof MilterProtocolError ? s : { type: 'header', name: s[0]!, value: s[1]! };
    }
    case SMFIC.BODY:
      return { type: 'body', chunk: Buffer.from(data) };
    case SMFIC.BODYEOB:
      return data.length > 0 ? { type: 'eom', chunk: Buffer.from(data) } : { type: 'eom' };
    case SMFIC.UNKNOWN: {
      const s = strings(1);
      return s instanceof MilterProtocolError ? s : { type: 'unknown', command: s[0]! };
    }
    case SMFIC.DATA:
      return none('data');
    case SMFIC.EOH:
      return none('eoh');
    case SMFIC.ABORT:
      return none('abort');
    case SMFIC.QUIT:
      return none('quit');
    case SMFIC.QUIT_NC:
      return none('quit_nc');
    default:
      return new MilterProtocolError('unknown-command', `command byte 0x${cmdByte.toString(16).padStart(2, '0')}`);
  }
}

const FAMILIES: Record<string, ConnectFamily> = { [SMFIA.INET]: 'ipv4', [SMFIA.INET6]: 'ipv6', [SMFIA.UNIX]: 'unix', [SMFIA.UNKNOWN]: 'unknown' };

function decodeConnect(data: Buffer): MilterCommand | MilterProtocolError {
  const cmd = SMFIC.CONNECT;
  const nul = data.indexOf(0);
  if (nul < 0) return malformed(cmd, 'hostname without NUL terminator');
  const hostname = data.toString('utf8', 0, nul);
  if (nul + 1 >= data.length) return malformed(cmd, 'missing address family');
  const famChar = String.fromCharCode(data[nul + 1]!);
  const family = FAMILIES[famChar];
  if (family === undefined) return malformed(cmd, `bad address family ${JSON.stringify(famChar)}`);
  const rest = data.subarray(nul + 2);
  if (family === 'unknown') {
    if (rest.length !== 0) return malformed(cmd, 'data after family "U"');
    return { type: 'connect', hostname, family };
  }
  if (rest.length < 2) return malformed(cmd, 'truncated port');
  const port = rest.readUInt16BE(0);
  const s = cStrings(rest.subarray(2));
  if (s === null) return malformed(cmd, 'address without NUL terminator');
  if (s.length !== 1) return malformed(cmd, `expected one address, got ${s.length} string(s)`);
  let address = s[0]!;
  if (family === 'ipv6' && /^ipv6:/i.test(address)) address = address.slice(5); // Sendmail's form
  if (family === 'ipv4' && !net.isIPv4(address)) return malformed(cmd, `bad IPv4 address ${JSON.stringify(address)}`);
  if (family === 'ipv6' && !net.isIPv6(address)) return malformed(cmd, `bad IPv6 address ${JSON.stringify(address)}`);
  return { type: 'connect', hostname, family, port, address };
}

// ---- encoding MTA → filter commands (fake MTAs in tests; the decoder's inverse) -------------

function cstr(s: string, what: string): Buffer {
  if (s.includes('\0')) throw new TypeError(`milter ${what} must not contain NUL`);
  return Buffer.from(`${s}\0`, 'utf8');
}

/** One packet: length, command byte, data. */
export function packet(cmd: string, ...parts: Buffer[]): Buffer {
  if (cmd.length !== 1 || cmd.charCodeAt(0) > 0xff) throw new TypeError(`milter command must be one byte, got ${JSON.stringify(cmd)}`);
  const data = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1, 0);
  head[4] = cmd.charCodeAt(0);
  return Buffer.concat([head, data]);
}

export function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

const FAMILY_CHAR: Record<ConnectFamily, string> = { ipv4: SMFIA.INET, ipv6: SMFIA.INET6, unix: SMFIA.UNIX, unknown: SMFIA.UNKNOWN };

/** Encodes a command as an MTA sends it. Throws TypeError on a string with NUL (a caller bug). */
export function encodeCommand(c: MilterCommand): Buffer {
  switch (c.type) {
    case 'optneg':
      return packet(SMFIC.OPTNEG, u32s(c.version, c.actions, c.protocol));
    case 'macro':
      if (c.command.length !== 1 || c.command.charCodeAt(0) > 0xff) throw new TypeError(`macro command must be one byte, got ${JSON.stringify(c.command)}`);
      return packet(SMFIC.MACRO, Buffer.from(c.command, 'latin1'), ...[...c.macros].flatMap(([k, v]) => [cstr(k, 'macro name'), cstr(v, 'macro value')]));
    case 'connect': {
      const parts = [cstr(c.hostname, 'hostname'), Buffer.from(FAMILY_CHAR[c.family], 'latin1')];
      if (c.family !== 'unknown') {
        const port = Buffer.alloc(2);
        port.writeUInt16BE(c.port ?? 0, 0);
        parts.push(port, cstr(c.address ?? '', 'address'));
      }
      return packet(SMFIC.CONNECT, ...parts);
    }
    case 'helo':
      return packet(SMFIC.HELO, cstr(c.name, 'helo'));
    case 'mail':
      return packet(SMFIC.MAIL, cstr(c.sender, 'sender'), ...c.args.map((a) => cstr(a, 'ESMTP argument')));
    case 'rcpt':
      return packet(SMFIC.RCPT, cstr(c.recipient, 'recipient'), ...c.args.map((a) => cstr(a, 'ESMTP argument')));
    case 'header':
      return packet(SMFIC.HEADER, cstr(c.name, 'header name'), cstr(c.value, 'header value'));
    case 'body':
      return packet(SMFIC.BODY, c.chunk);
    case 'eom':
      return packet(SMFIC.BODYEOB, c.chunk ?? Buffer.alloc(0));
    case 'unknown':
      return packet(SMFIC.UNKNOWN, cstr(c.command, 'unknown command'));
    case 'data':
      return packet(SMFIC.DATA);
    case 'eoh':
      return packet(SMFIC.EOH);
    case 'abort':
      return packet(SMFIC.ABORT);
    case 'quit':
      return packet(SMFIC.QUIT);
    case 'quit_nc':
      return packet(SMFIC.QUIT_NC);
  }
}
