/** Throwaway certificates made by openssl, for TLS tests: self-signed, or a CA and leaves it signs. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificate {
  dir: string;
  key: string;
  cert: string;
  remove(): void;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.error?.message ?? r.stderr}`);
}

function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'auditgate-cert-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The subjectAltName for a name: an IP address or a DNS name. */
function altName(name: string): string {
  return /^[\d.]+$/.test(name) || name.includes(':') ? `IP:${name}` : `DNS:${name}`;
}

export function makeCertificate(cn: string): TestCertificate {
  const { dir, remove } = tempDir();
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${altName(cn)}`]);
  return { dir, key, cert, remove };
}

/** A CA certificate (its key next to it) that signs leaves with issue(). */
export interface TestCa extends TestCertificate {
  /** A leaf certificate for `names` (DNS names or IP addresses; the first is the CN), signed by this CA. */
  issue(names: string[]): TestCertificate;
}

export function makeCa(cn = 'auditgate test CA'): TestCa {
  const { dir, remove } = tempDir();
  const key = path.join(dir, 'ca-key.pem');
  const cert = path.join(dir, 'ca.pem');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  let serial = 0;
  const issue = (names: string[]): TestCertificate => {
    const n = ++serial;
    const leafKey = path.join(dir, `leaf${n}-key.pem`);
    const csr = path.join(dir, `leaf${n}.csr`);
    const leafCert = path.join(dir, `leaf${n}.pem`);
    const ext = path.join(dir, `leaf${n}.ext`);
    writeFileSync(ext, `subjectAltName=${names.map(altName).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', leafKey, '-out', csr, '-subj', `/CN=${names[0] ?? 'leaf'}`]);
    openssl(['x509', '-req', '-in', csr, '-CA', cert, '-CAkey', key, '-set_serial', String(1000 + n), '-days', '1', '-out', leafCert, '-extfile', ext]);
    return { dir, key: leafKey, cert: leafCert, remove };
  };
  return { dir, key, cert, remove, issue };
}
