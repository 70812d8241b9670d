/**
 * PEM files the relay's TLS settings name (`relay.tls.ca`, `cert`, `key`): read and checked when
 * the config is loaded, so a missing, unreadable or mismatched file is a config error at its key
 * (file:line) rather than a failure at the first message. The only file reads of parsing.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { PemFile } from './types.js';
import { ValueProblem, describeValue } from './values.js';

type PemKind = 'ca' | 'cert' | 'key';

const BLOCK: Record<PemKind, { re: RegExp; what: string }> = {
  ca: { re: /-----BEGIN CERTIFICATE-----/, what: 'a PEM certificate ("-----BEGIN CERTIFICATE-----")' },
  cert: { re: /-----BEGIN CERTIFICATE-----/, what: 'a PEM certificate ("-----BEGIN CERTIFICATE-----")' },
  key: { re: /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/, what: 'a PEM private key ("-----BEGIN PRIVATE KEY-----")' },
};

/** Reads a PEM file (relative to `baseDir`); a ValueProblem names the path and what is wrong. */
export function readPemFile(v: unknown, baseDir: string, kind: PemKind): PemFile {
  if (typeof v !== 'string' || v.trim() === '') throw new ValueProblem(`expected the path of a PEM file, got ${describeValue(v)}`);
  const file = path.resolve(baseDir, v.trim());
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : (e as Error).message;
    throw new ValueProblem(`cannot read ${file}: ${why}`);
  }
  const block = BLOCK[kind];
  if (!block.re.test(pem)) throw new ValueProblem(`${file} does not hold ${block.what}`);
  if (kind === 'ca') {
    try {
      tls.createSecureContext({ ca: pem });
    } catch (e) {
      throw new ValueProblem(`${file}: not a usable CA certificate (${(e as Error).message})`);
    }
  }
  return { path: file, pem };
}

/** Undefined when the certificate and key belong together, else why not. */
export function certificateKeyProblem(cert: PemFile, key: PemFile): string | undefined {
  try {
    tls.createSecureContext({ cert: cert.pem, key: key.pem });
    return undefined;
  } catch (e) {
    return `${key.path} is not the key of ${cert.path} (${(e as Error).message})`;
  }
}
