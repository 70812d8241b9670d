/**
 * The web console's side of the admin listener (routes added to server.ts's):
 *
 *   GET /                      the page (no token needed: it holds no data and asks for one)
 *   GET /console/NAME.js|css   its script modules and style sheet, served from the package
 *   GET /auth                  {required, authorized}: whether a token is needed and the one sent is right
 *                              (always 200, so the page can ask without a failed request)
 *   GET /events/decisions      live decisions, server-sent events (decision-stream.ts)
 *   GET /rates                 policy firing rates per minute over the last hour (firing-rates.ts)
 *
 * The script modules are TypeScript under src/console/, compiled by `npm run build` next to
 * this file's compiled form; run from the sources (tests, `tsx`), a module is compiled from its
 * .ts on first request (TypeScript is then installed), so no separate step is needed either way.
 * It also keeps the recent decisions (for the stream's first paint and a client's page).
 */
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DecisionEvent } from '../events.js';
import { banJson } from './bans.js';
import { CONSOLE_CSS, CONSOLE_HTML, CONSOLE_CSP } from './console-page.js';
import { DecisionLog, prefixMatcher } from './decision-log.js';
import { DecisionStream, type DecisionStreamOptions } from './decision-stream.js';
import { FiringRates } from './firing-rates.js';
import { AdminHttpError } from './http.js';
import { HANDLED, RawBody, type Route } from './route.js';
import type { AdminView } from './view.js';

/** Where the browser modules are: src/console/ (sources) or dist/src/console/ (built). */
const MODULE_DIR = fileURLToPath(new URL('../console/', import.meta.url));
const MODULE_NAME = /^[a-z][a-z0-9-]{0,40}\.js$/;
const SAMPLE_MS = 5000;

/** Reads a browser module: the built .js, else its .ts compiled now (cached); undefined when neither exists. */
async function loadModule(name: string, dir: string): Promise<string | undefined> {
  const js = path.join(dir, name);
  if (fs.existsSync(js)) return fs.readFileSync(js, 'utf8');
  const ts = js.replace(/\.js$/, '.ts');
  if (!fs.existsSync(ts)) return undefined;
  const { default: typescript } = await import('typescript');
  const out = typescript.transpileModule(fs.readFileSync(ts, 'utf8'), {
    compilerOptions: { target: typescript.ScriptTarget.ES2022, module: typescript.ModuleKind.ES2022 },
    fileName: ts,
  });
  return out.outputText;
}

export class AdminConsole {
  readonly log = new DecisionLog();
  readonly stream: DecisionStream;
  private readonly rates = new FiringRates();
  private readonly sampler: NodeJS.Timeout;
  private readonly modules = new Map<string, Promise<string | undefined>>();
  private readonly onDecision = (e: DecisionEvent): void => this.stream.publish(this.log.push(e));
  private readonly moduleDir: string;

  constructor(
    private readonly gateway: AdminView,
    /** The admin listener's token check, as a yes/no. */
    private readonly authorized: (req: http.IncomingMessage) => boolean,
    opts: DecisionStreamOptions & { moduleDir?: string } = {},
  ) {
    this.stream = new DecisionStream(this.log, opts);
    gateway.events.on('decision', this.onDecision);
    this.sample();
    this.sampler = setInterval(() => this.sample(), SAMPLE_MS);
    this.sampler.unref();
    this.moduleDir = opts.moduleDir ?? MODULE_DIR;
  }

  routes(): Route[] {
    return [
      { method: 'GET', parts: [], auth: false, handler: () => Promise.resolve(new RawBody('text/html; charset=utf-8', CONSOLE_HTML, CONSOLE_CSP)) },
      { method: 'GET', parts: ['console', ':file'], auth: false, handler: (c) => this.asset(c.params.file!) },
      { method: 'GET', parts: ['auth'], auth: false, handler: (c) => Promise.resolve(this.auth(c.req)) },
      {
        method: 'GET',
        parts: ['events', 'decisions'],
        auth: true,
        handler: (c) => {
          this.stream.open(c.req, c.res);
          return Promise.resolve(HANDLED);
        },
      },
      { method: 'GET', parts: ['rates'], auth: true, handler: () => Promise.resolve(this.firingRates()) },
    ];
  }

  /** What a client's page adds to `show ip`: bans that cover or lie inside the prefix, and its recent decisions. */
  aboutClient(prefix: string): { bans: unknown[]; decisions: unknown[] } {
    const now = this.gateway.clock.now();
    const inside = prefixMatcher(prefix);
    const network = prefix.split('/')[0]!;
    const bans = (this.gateway.controls?.list() ?? [])
      .filter((b) => inside(b.prefix.split('/')[0]!) || prefixMatcher(b.prefix)(network))
      .map((b) => banJson(b, now));
    const decisions = this.log.recent(20, prefix).map((d) => ({ id: d.id, ...d.event }));
    return { bans, decisions };
  }

  close(): void {
    clearInterval(this.sampler);
    this.gateway.events.off('decision', this.onDecision);
    this.stream.close();
  }

  private sample(): void {
    this.rates.sample(this.gateway.clock.now(), this.gateway.recorder.decisionCounts);
  }

  private auth(req: http.IncomingMessage): unknown {
    return { required: this.gateway.config.admin.token !== undefined, authorized: this.authorized(req) };
  }

  private firingRates(): unknown {
    this.sample();
    const now = this.gateway.clock.now();
    return { minutes: 60, now: new Date(now).toISOString(), rates: this.rates.rates(now) };
  }

  private async asset(file: string): Promise<RawBody> {
    if (file === 'console.css') return new RawBody('text/css; charset=utf-8', CONSOLE_CSS);
    const text = MODULE_NAME.test(file) ? await this.module(file) : undefined;
    if (text === undefined) throw new AdminHttpError(404, 'AG_ADMIN_NOT_FOUND', `no console file ${file}`);
    return new RawBody('text/javascript; charset=utf-8', text);
  }

  private module(name: string): Promise<string | undefined> {
    let p = this.modules.get(name);
    if (!p) {
      p = loadModule(name, this.moduleDir);
      this.modules.set(name, p);
      // Only modules that exist stay cached (a name that is not one costs no memory).
      p.then(
        (text) => text === undefined && this.modules.delete(name),
        () => this.modules.delete(name),
      );
    }
    return p;
  }
}
