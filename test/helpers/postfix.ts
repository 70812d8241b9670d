/**
 * A private Postfix instance per test (Debian's postfix package, 3.7): its own config, queue and
 * data directories under one temp dir, an smtpd on a free loopback port that reads a PROXY v1/v2
 * header (so a test presents any client address; `proxyProtocol: false` for a plain smtpd), and
 * every domain relayed to the test's backend. Optional: a milter (smtpd_milters), a policy
 * service (check_policy_service), STARTTLS with a given certificate.
 *
 *   dir/etc/main.cf, master.cf   config_directory (postfix -c dir/etc ...)
 *   dir/queue                    queue_directory (root-owned; subdirectories made by Postfix)
 *   dir/data                     data_directory (made by Postfix, owned by postfix)
 *   dir/maillog                  maillog_file, written by postlogd; print it when a test fails
 *
 * Postfix's master must start as root (CI runs as root); guard suites with
 * requireProgram('postfix', { root: true, ... }). Every wait is a bounded poll; an instance
 * left running is aborted when the test process exits.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { programPath } from './programs.js';
import { freePort, waitUntil } from './redis.js';

export type PolicyRestriction = 'client' | 'helo' | 'sender' | 'recipient' | 'data' | 'end_of_data';

export interface PostfixOptions {
  /** Port of the backend SMTP server on 127.0.0.1 that receives every message. */
  relayPort: number;
  /** smtpd_milters = inet:127.0.0.1:port, milter_protocol 6. */
  milter?: { port: number; defaultAction?: 'accept' | 'reject' | 'tempfail' | 'quarantine' };
  /**
   * check_policy_service inet:127.0.0.1:port in each listed restriction list (default
   * ['recipient']). With client, helo or sender listed, smtpd_delay_reject = no, so the
   * request's protocol_state is CONNECT / HELO / MAIL rather than RCPT.
   */
  policy?: { port: number; restrictions?: PolicyRestriction[] };
  /**
   * The smtpd reads a PROXY header before the session (default true). Without it the smtpd is
   * an ordinary MTA, e.g. a backend for the gateway's relay.
   */
  proxyProtocol?: boolean;
  /** STARTTLS offered with this certificate (smtpd_tls_security_level = may). */
  tls?: { cert: string; key: string };
  /** Extra main.cf settings, written last (they win). */
  mainCf?: Record<string, string>;
}

const live = new Set<PostfixInstance>();
process.on('exit', () => {
  for (const p of live) p.abortSync();
});

function run(file: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/**
 * True once the smtpd port accepts. A bare connect, closed at once: smtpd logs "haproxy read:
 * EOF" for it, but calls no milter or policy service (a full session would show up there).
 */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const MASTER_CF = (port: number) => `# written by test/helpers/postfix.ts; chroot off everywhere (no copies of /etc in the queue)
127.0.0.1:${port} inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
tlsmgr     unix  - - n 1000? 1 tlsmgr
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
`;

function mainCf(dir: string, opts: PostfixOptions): string {
  const relay = `[127.0.0.1]:${opts.relayPort}`;
  const s: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: path.join(dir, 'queue'),
    data_directory: path.join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    syslog_name: `postfix-${path.basename(dir).replace(/^auditgate-postfix-/, '')}`,
    // Postfix 3.4+: log through postlogd (master.cf "postlog") to a file; the file must be
    // under one of maillog_file_prefixes (default /var, /dev/stdout).
    maillog_file_prefixes: dir,
    maillog_file: path.join(dir, 'maillog'),
    myhostname: 'postfix.test',
    mydomain: 'test',
    myorigin: '$myhostname',
    mydestination: '',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'all', // the PROXY header may name an IPv6 client
    mynetworks: '127.0.0.0/8',
    relay_domains: 'static:ALL',
    relayhost: relay,
    transport_maps: `static:smtp:${relay}`,
    smtputf8_enable: 'no',
    smtp_dns_support_level: 'disabled',
    smtp_host_lookup: 'native',
    smtpd_peername_lookup: 'no', // no reverse DNS for made-up client addresses: name "unknown"
    smtpd_error_sleep_time: '0',
    in_flow_delay: '0',
    smtp_connect_timeout: '5s',
  };
  if (opts.proxyProtocol !== false) s.smtpd_upstream_proxy_protocol = 'haproxy';
  if (opts.tls) {
    s.smtpd_tls_cert_file = opts.tls.cert;
    s.smtpd_tls_key_file = opts.tls.key;
    s.smtpd_tls_security_level = 'may';
    s.smtpd_tls_loglevel = '1';
    s.smtpd_tls_received_header = 'yes';
  }
  if (opts.milter) {
    s.smtpd_milters = `inet:127.0.0.1:${opts.milter.port}`;
    s.milter_protocol = '6';
    s.milter_default_action = opts.milter.defaultAction ?? 'tempfail';
  }
  if (opts.policy) {
    const service = `check_policy_service inet:127.0.0.1:${opts.policy.port}`;
    const lists = opts.policy.restrictions ?? ['recipient'];
    for (const l of lists) s[`smtpd_${l}_restrictions`] = service;
    if (lists.some((l) => l === 'client' || l === 'helo' || l === 'sender')) s.smtpd_delay_reject = 'no';
  }
  Object.assign(s, opts.mainCf ?? {});
  return `# written by test/helpers/postfix.ts\n${Object.entries(s)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')}\n`;
}

export class PostfixInstance {
  private stopped = false;

  private constructor(
    readonly dir: string,
    /** smtpd port on 127.0.0.1 (expects a PROXY header first, unless started with proxyProtocol: false). */
    readonly port: number,
  ) {}

  get configDir(): string {
    return path.join(this.dir, 'etc');
  }

  get maillog(): string {
    return path.join(this.dir, 'maillog');
  }

  static async start(opts: PostfixOptions): Promise<PostfixInstance> {
    const postfix = programPath('postfix');
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-postfix-'));
      // Postfix refuses config / queue directories that are group- or world-writable or not
      // root's; mkdtemp gives 0700, and the postfix user must traverse into data/.
      fs.chmodSync(dir, 0o755);
      fs.mkdirSync(path.join(dir, 'etc'), { mode: 0o755 });
      fs.mkdirSync(path.join(dir, 'queue'), { mode: 0o755 });
      const port = await freePort();
      const p = new PostfixInstance(dir, port);
      fs.writeFileSync(path.join(p.configDir, 'main.cf'), mainCf(dir, opts), { mode: 0o644 });
      fs.writeFileSync(path.join(p.configDir, 'master.cf'), MASTER_CF(port), { mode: 0o644 });
      live.add(p);
      // "start" runs post-install create-missing (queue subdirectories, data_directory with
      // the right owners), the integrity checks, then "master -w", which waits for the master.
      const r = await run(postfix, ['-c', p.configDir, 'start']);
      const up = r.code === 0 && (await waitUntil(() => accepts(port), 10_000, 50));
      if (up) return p;
      lastErr = new Error(`postfix -c ${p.configDir} start failed (exit ${r.code}): ${r.output.trim() || '(no output: Postfix logs to the maillog)'}\n--- maillog ---\n${p.log().slice(-4000)}`);
      await p.stop();
    }
    throw lastErr;
  }

  /** The maillog so far ('' when none yet). */
  log(): string {
    try {
      return fs.readFileSync(this.maillog, 'utf8');
    } catch {
      return '';
    }
  }

  /** `postfix status`: exit 0 and "is running" while the master lives. */
  async status(): Promise<{ running: boolean; output: string }> {
    const r = await run(programPath('postfix'), ['-c', this.configDir, 'status']);
    return { running: r.code === 0, output: r.output };
  }

  /** `postconf -c dir/etc -h name`. */
  postconf(name: string): string {
    const r = spawnSync(programPath('postconf'), ['-c', this.configDir, '-h', name], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) throw new Error(`postconf ${name}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** PIDs of this instance's processes: master passes MAIL_CONFIG=<config dir> to every child. */
  processes(): number[] {
    const want = `MAIL_CONFIG=${this.configDir}\0`;
    const pids: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (`${fs.readFileSync(`/proc/${entry}/environ`, 'latin1')}\0`.includes(want)) pids.push(Number(entry));
      } catch {
        // gone, or not ours to read
      }
    }
    return pids;
  }

  /**
   * `postfix stop` (it waits for the master), then waits for every child to go; stragglers get
   * SIGKILL. Removes the temp dir unless `keep` (to read the maillog after a failure).
   */
  async stop(opts: { keep?: boolean } = {}): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      await run(programPath('postfix'), ['-c', this.configDir, 'stop']);
      if (!(await waitUntil(() => this.processes().length === 0, 10_000, 50))) {
        for (const pid of this.processes()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      live.delete(this);
    }
    if (!opts.keep) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** For the exit handler: no waiting, no promises. */
  abortSync(): void {
    spawnSync(programPath('postfix'), ['-c', this.configDir, 'abort'], { stdio: 'ignore', timeout: 5000 });
    for (const pid of this.processes()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
