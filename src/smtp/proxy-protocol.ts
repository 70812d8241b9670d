/**
 * HAProxy PROXY protocol v1 (text) and v2 (binary) headers, read from trusted peers before
 * the SMTP session starts. smtp-server only knows v1 and trusts exact addresses, not CIDRs,
 * so auditgate reads the header itself and hands the socket over with the real address.
 */
import type { Socket } from 'node:net';
import { isIP } from 'node:net';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;

export interface ProxyInfo {
  /** Undefined for PROXY UNKNOWN / v2 LOCAL: the connection's own address stands. */
  sourceAddress?: string;
  sourcePort?: number;
}

export type ParseResult = { done: true; info: ProxyInfo; consumed: number } | { done: false } | { error: string };

/** Parses a header at the start of `buf`; `{done: false}` means more bytes are needed. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return { done: false };
  if (buf[0] === 0x0d) {
    const n = Math.min(buf.length, 12);
    if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return { error: 'invalid PROXY v2 signature' };
    if (buf.length < 16) return { done: false };
    return parseV2(buf);
  }
  if (buf[0] !== 0x50) return { error: 'expected a PROXY header' };
  const n = Math.min(buf.length, 6);
  if (buf.subarray(0, n).toString('latin1') !== 'PROXY '.slice(0, n)) return { error: 'expected a PROXY header' };
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return buf.length >= V1_MAX ? { error: 'PROXY v1 header too long' } : { done: false };
  if (eol + 2 > V1_MAX) return { error: 'PROXY v1 header too long' };
  const parts = buf.subarray(0, eol).toString('latin1').split(' ');
  if (parts[1] === 'UNKNOWN') return { done: true, info: {}, consumed: eol + 2 };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { error: 'malformed PROXY v1 header' };
  const src = parts[2]!;
  const fam = isIP(src);
  if ((parts[1] === 'TCP4' && fam !== 4) || (parts[1] === 'TCP6' && fam !== 6) || !isIP(parts[3]!)) {
    return { error: 'malformed PROXY v1 address' };
  }
  const port = Number(parts[4]);
  if (!/^\d{1,5}$/.test(parts[4]!) || port > 65535) return { error: 'malformed PROXY v1 port' };
  return { done: true, info: { sourceAddress: src, sourcePort: port }, consumed: eol + 2 };
}

function parseV2(buf: Buffer): ParseResult {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { error: 'unsupported PROXY v2 version' };
  const cmd = verCmd & 0x0f;
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (len > 2048) return { error: 'PROXY v2 header too long' };
  if (buf.length < 16 + len) return { done: false };
  const body = buf.subarray(16, 16 + len);
  const consumed = 16 + len;
  if (cmd === 0x0) return { done: true, info: {}, consumed }; // LOCAL: health checks
  if (cmd !== 0x1) return { error: 'unsupported PROXY v2 command' };
  if (fam === 0x11) {
    if (body.length < 12) return { error: 'short PROXY v2 IPv4 block' };
    const src = `${body[0]}.${body[1]}.${body[2]}.${body[3]}`;
    return { done: true, info: { sourceAddress: src, sourcePort: body.readUInt16BE(8) }, consumed };
  }
  if (fam === 0x21) {
    if (body.length < 36) return { error: 'short PROXY v2 IPv6 block' };
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(body.readUInt16BE(i).toString(16));
    return { done: true, info: { sourceAddress: parts.join(':'), sourcePort: body.readUInt16BE(32) }, consumed };
  }
  if (fam === 0x00) return { done: true, info: {}, consumed }; // UNSPEC
  return { error: 'unsupported PROXY v2 address family' };
}

/** Reads a PROXY header from `socket`, then puts back whatever followed it. */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyInfo> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (err: Error | null, info?: ProxyInfo, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      socket.pause();
      if (err) return reject(err);
      if (rest && rest.length) socket.unshift(rest);
      resolve(info!);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if ('error' in r) return finish(new Error(r.error));
      if (r.done) finish(null, r.info, buf.subarray(r.consumed));
    };
    const onError = (err: Error): void => finish(err);
    const onEnd = (): void => finish(new Error('connection closed before the PROXY header'));
    const timer = setTimeout(() => finish(new Error('no PROXY header in time')), timeoutMs);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
  });
}

/** True when a client's first bytes look like a PROXY header (v1 or v2). */
export function looksLikeProxyHeader(chunk: Buffer): boolean {
  return chunk.subarray(0, 6).toString('latin1') === 'PROXY ' || (chunk.length >= 12 && chunk.subarray(0, 12).equals(V2_SIGNATURE));
}
