/**
 * A gateway whose milter and/or policy-service fronts listen on 127.0.0.1:0, optionally with the
 * SMTP proxy too (then relaying to `relay`). `body` holds the series / record / policies sections.
 */
import type { Gateway } from '../../src/gateway.js';
import type { Clock } from '../../src/series/clock.js';
import { startGatewayFromYaml } from './smtp.js';

export interface FrontsGateway {
  gateway: Gateway;
  milterPort: number;
  policyPort: number;
  /** 0 without the SMTP proxy. */
  smtpPort: number;
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface FrontsOptions {
  body: string;
  milter?: boolean | string;
  policy?: boolean | string;
  /** Runs the SMTP proxy too, relaying here. */
  relay?: string;
  clock?: Clock;
}

const portOf = (a: Array<{ port?: number }>): number => a[0]?.port ?? 0;

export async function startFronts(opts: FrontsOptions): Promise<FrontsGateway> {
  const front = (v: boolean | string | undefined) => (v === undefined || v === false ? '' : typeof v === 'string' ? v : '{ listen: ["127.0.0.1:0"], idle_timeout: 30s }');
  const yaml = `server:
  hostname: gw.test
  listen: ${opts.relay ? '["127.0.0.1:0"]' : '[]'}
  proxy_protocol: [127.0.0.0/8]
${opts.relay ? `relay: { url: ${opts.relay}, timeout: 5s }\n` : ''}${opts.milter ? `milter: ${front(opts.milter)}\n` : ''}${opts.policy ? `policy_service: ${front(opts.policy)}\n` : ''}admin: { enabled: false }
log: { level: debug }
${opts.body}
`;
  const { gateway, logs } = await startGatewayFromYaml(yaml, opts.clock ? { clock: opts.clock } : {});
  return {
    gateway,
    milterPort: portOf(gateway.milterAddresses() as Array<{ port?: number }>),
    policyPort: portOf(gateway.policyAddresses() as Array<{ port?: number }>),
    smtpPort: opts.relay ? gateway.smtpAddresses()[0]!.port : 0,
    logs,
    close: () => gateway.close(500),
  };
}
