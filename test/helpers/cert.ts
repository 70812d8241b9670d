/** A throwaway self-signed certificate made by openssl, for TLS tests. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificate {
  dir: string;
  key: string;
  cert: string;
  remove(): void;
}

export function makeCertificate(cn: string): TestCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'auditgate-cert-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.error?.message ?? r.stderr}`);
  return { dir, key, cert, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
