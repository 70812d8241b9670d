/**
 * docker/ ships Prometheus alert rules and a Grafana dashboard over /metrics: every metric they
 * name must be one a live gateway's /metrics exposes (histograms with their _bucket/_sum/_count
 * series), `promtool check rules` / `check config` must pass (Debian package "prometheus"; a
 * missing promtool fails in CI), and the compose file provisions both.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { programPath, requireProgram } from '../helpers/programs.js';
import { startTestGateway, type TestGateway } from '../helpers/smtp.js';

const DOCKER = fileURLToPath(new URL('../../docker/', import.meta.url));
const RULES = path.join(DOCKER, 'prometheus/rules.yml');
const PROMETHEUS = path.join(DOCKER, 'prometheus/prometheus.yml');
const DASHBOARD = path.join(DOCKER, 'grafana/dashboards/auditgate.json');
/** Series Prometheus makes itself, not /metrics. */
const PROMETHEUS_OWN = new Set(['up']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);

/** The metric names a PromQL expression reads (functions, labels, strings, durations, keywords and Grafana variables left out). */
function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ')
    .replace(/label_values\(\s*([^,)]+?)\s*,[^)]*\)/g, ' $1 ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\b\d+(?:\.\d+)?(?:ms|[smhdwy])?\b/g, ' ');
  const out: string[] = [];
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const rest = s.slice(m.index + m[0].length).trimStart();
    if (rest.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    out.push(m[0]);
  }
  return [...new Set(out)];
}

/** Names /metrics exposes, from its `# TYPE` lines (a histogram or summary also as its series). */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
  datasource?: { uid: string };
}
const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: Array<{ query: { query: string } | string }> } };
const rules = parse(fs.readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; expr: string }> }> };

function dashboardExprs(): string[] {
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of dashboard.templating.list) exprs.push(typeof v.query === 'string' ? v.query : v.query.query);
  return exprs;
}
const ruleExprs = (): string[] => rules.groups.flatMap((g) => g.rules.map((r) => r.expr));

describe('dashboards and alert rules', () => {
  let gw: TestGateway;
  let dir: string;
  let exposed: Set<string>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-dashboards-'));
    gw = await startTestGateway({
      relay: `dir:${dir}`,
      admin: '{ listen: "127.0.0.1:0" }',
      body: `state_dir: ${JSON.stringify(dir)}\nseries:\n  connections: { type: cidr, interval: 1m, windows: 2 }\nrecord:\n  - { on: connect, series: connections }\n`,
    });
    const r = await fetch(`http://127.0.0.1:${gw.gateway.adminAddress()!.port}/metrics`);
    expect(r.status).toBe(200);
    exposed = exposedNames(await r.text());
  });
  afterAll(async () => {
    await gw?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads metric names out of PromQL (so an unknown name cannot slip through)', () => {
    expect(metricNames('sum by (policy, action) (rate(auditgate_decisions_total{mode="enforce", instance=~"$instance"}[10m])) > 5 * sum(rate(x_total[1d] offset 10m))')).toEqual([
      'auditgate_decisions_total',
      'x_total',
    ]);
    expect(metricNames('histogram_quantile(0.95, sum by (le) (rate(foo_seconds_bucket[$__rate_interval])))')).toEqual(['foo_seconds_bucket']);
    expect(metricNames('label_values(auditgate_uptime_seconds, instance)')).toEqual(['auditgate_uptime_seconds']);
    expect(metricNames('up{job="auditgate"} == 0 and on(instance) node_load1 > bool 2')).toEqual(['up', 'node_load1']);
    expect(exposedNames('# TYPE h histogram\n# TYPE c counter\n')).toEqual(new Set(['h', 'h_bucket', 'h_sum', 'h_count', 'c']));
  });

  it('every metric the Grafana dashboard reads is exposed by /metrics', () => {
    const names = [...new Set(dashboardExprs().flatMap(metricNames))];
    expect(names.length).toBeGreaterThan(15);
    expect(names.filter((n) => !exposed.has(n))).toEqual([]);
    // The panels the issue asks for: decisions per policy and action, fronts, sessions, relay latency, store state, bans.
    for (const n of ['auditgate_decisions_total', 'auditgate_verdicts_total', 'auditgate_sessions_open', 'auditgate_relay_latency_seconds_bucket', 'auditgate_relay_backend_up', 'auditgate_store_fallback', 'auditgate_bans_active']) {
      expect(names).toContain(n);
    }
    expect(new Set(dashboard.panels.flatMap((p) => (p.datasource ? [p.datasource.uid] : [])))).toEqual(new Set(['auditgate-prometheus']));
  });

  it('every metric the alert rules read is exposed by /metrics (or is Prometheus\'s own up)', () => {
    const names = [...new Set(ruleExprs().flatMap(metricNames))];
    expect(names.filter((n) => !exposed.has(n) && !PROMETHEUS_OWN.has(n))).toEqual([]);
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
    for (const a of ['AuditgateStoreFallback', 'AuditgateRelayFailures', 'AuditgateBackendDown', 'AuditgateNoBackendDelivers', 'AuditgatePolicyFiringFarAboveUsual', 'AuditgateAlertDeliveriesFailing']) expect(alerts).toContain(a);
  });

  it('the compose file runs Prometheus and Grafana with these files provisioned', () => {
    const compose = parse(fs.readFileSync(path.join(DOCKER, 'compose.yaml'), 'utf8')) as { services: Record<string, { volumes?: string[] }> };
    expect(compose.services.prometheus?.volumes).toEqual(expect.arrayContaining(['./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro', './prometheus/rules.yml:/etc/prometheus/rules.yml:ro']));
    expect(compose.services.grafana?.volumes).toEqual(expect.arrayContaining(['./grafana/provisioning:/etc/grafana/provisioning:ro', './grafana/dashboards:/etc/grafana/dashboards:ro']));
    const provider = parse(fs.readFileSync(path.join(DOCKER, 'grafana/provisioning/dashboards/auditgate.yaml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    expect(provider.providers[0]!.options.path).toBe('/etc/grafana/dashboards');
    const ds = parse(fs.readFileSync(path.join(DOCKER, 'grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: Array<{ uid: string; url: string }> };
    expect(ds.datasources[0]).toMatchObject({ uid: 'auditgate-prometheus', url: 'http://prometheus:9090' });
    // Prometheus reaches the nodes by name: the nodes' config must accept those names in Host.
    const node = parse(fs.readFileSync(path.join(DOCKER, 'auditgate-node.yaml'), 'utf8')) as { admin: { hosts: string[]; token: string } };
    const prom = parse(fs.readFileSync(PROMETHEUS, 'utf8')) as { scrape_configs: Array<{ authorization: { credentials: string }; static_configs: Array<{ targets: string[] }> }> };
    const job = prom.scrape_configs[0]!;
    expect(job.authorization.credentials).toBe(node.admin.token);
    for (const t of job.static_configs[0]!.targets) expect(node.admin.hosts).toContain(t.split(':')[0]);
  });
});

const havePromtool = requireProgram('promtool', { pkg: 'prometheus', purpose: 'the promtool checks of docker/prometheus' });
describe.skipIf(!havePromtool)('promtool', () => {
  it('check rules and check config pass', () => {
    const rulesOut = execFileSync(programPath('promtool'), ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(rulesOut).toMatch(/SUCCESS: \d+ rules found/);
    const configOut = execFileSync(programPath('promtool'), ['check', 'config', PROMETHEUS], { encoding: 'utf8' });
    expect(configOut).toContain('is valid prometheus config file syntax');
  });
});
