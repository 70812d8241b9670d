/**
 * docker/: the node config loads with the project's loader and says what the compose file
 * promises (two nodes, replicate: cluster over one Redis, a Mailpit backend); the Dockerfile
 * keeps the runtime contract (non-root, ports, healthcheck, command). Docker itself is not run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { aggregateMasks, replicatedSeries } from '../../src/config/catalogue.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dockerDir = path.join(root, 'docker');

describe('docker/auditgate-node.yaml', () => {
  const config = loadConfig(path.join(dockerDir, 'auditgate-node.yaml'));

  it('relays to the compose backend and shares counts through the compose Redis', () => {
    expect(config.relay).toMatchObject({ kind: 'smtp', backends: [{ url: 'smtp://backend:1025', host: 'backend', port: 1025, implicit_tls: false }] });
    expect(config.store).toMatchObject({ redis: 'redis://redis:6379', on_error: 'local' });
    const series = Object.values(config.series);
    expect(series.length).toBeGreaterThan(0);
    for (const s of series) expect(s.replicate, s.name).toBe('cluster');
    expect(replicatedSeries(config).map((s) => s.name).sort()).toEqual(series.map((s) => s.name).sort());
    expect(aggregateMasks(config, config.series.connections!)).toEqual([0, 24]);
  });

  it('listens on every interface, admin with a token, state in a writable absolute dir', () => {
    expect(config.server.listen).toEqual([{ host: '0.0.0.0', port: 2525 }]);
    expect(config.admin.listen).toEqual({ host: '0.0.0.0', port: 8025 });
    expect(config.admin.token).toBeTruthy();
    expect(config.state_dir).toBe('/var/lib/auditgate/state');
    expect(config.log_dir).toBe('/var/lib/auditgate/series-log');
  });
});

describe('docker/compose.yaml', () => {
  const compose = parse(fs.readFileSync(path.join(dockerDir, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; ports?: string[]; volumes?: string[]; depends_on?: Record<string, unknown>; build?: { dockerfile?: string } }>;
  };

  it('runs redis, a Mailpit backend, two gateway nodes, Prometheus and Grafana on different host ports', () => {
    const s = compose.services;
    expect(Object.keys(s).sort()).toEqual(['backend', 'grafana', 'node1', 'node2', 'prometheus', 'redis']);
    expect(s.backend!.image).toMatch(/^axllent\/mailpit/);
    expect(s.redis!.image).toMatch(/^redis:/);
    const hostPorts: string[] = [];
    for (const name of ['node1', 'node2']) {
      const n = s[name]!;
      expect(n.volumes).toContain('./auditgate-node.yaml:/etc/auditgate/auditgate.yaml:ro');
      expect(Object.keys(n.depends_on ?? {})).toEqual(expect.arrayContaining(['redis', 'backend']));
      expect(n.build?.dockerfile).toBe('docker/Dockerfile');
      expect(n.ports?.some((p) => p.endsWith(':2525'))).toBe(true);
      for (const p of n.ports ?? []) hostPorts.push(p.split(':').slice(0, -1).join(':'));
    }
    for (const name of ['backend', 'prometheus', 'grafana']) for (const p of s[name]!.ports ?? []) hostPorts.push(p.split(':').slice(0, -1).join(':'));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });
});

describe('docker/Dockerfile', () => {
  const text = fs.readFileSync(path.join(dockerDir, 'Dockerfile'), 'utf8');

  it('builds in one stage and runs production dependencies as a non-root user', () => {
    expect(text.match(/^FROM \$\{NODE_IMAGE\}/gm)).toHaveLength(2);
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(text).toMatch(/npm ci --no-audit --no-fund\nCOPY/);
    expect(text).toMatch(/RUN npm run build/);
    expect(text).toMatch(/npm ci --omit=dev/);
    expect(text).toMatch(/^USER node$/m);
    expect(text).toMatch(/^EXPOSE 2525 8025$/m);
    expect(text).toMatch(/HEALTHCHECK[\s\S]*http:\/\/127\.0\.0\.1:8025\/healthz/);
    expect(text).toMatch(/^CMD \["node", "dist\/src\/cli\.js", "serve", "--config", "\/etc\/auditgate\/auditgate\.yaml"\]$/m);
  });

  it('copies everything the build needs (tsconfig.build.json includes only these)', () => {
    const build = JSON.parse(fs.readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const dir of build.include) expect(text).toContain(`COPY ${dir} ./${dir}`);
  });
});
