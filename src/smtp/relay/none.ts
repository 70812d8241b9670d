/**
 * No relay: what the gateway holds when the config has no `relay` (allowed only with
 * `server.listen: []`, when no SMTP client can reach the proxy and the milter or policy
 * service front decides for an MTA that delivers the mail itself). Every transaction fails as
 * a relay failure would (451), so a session that reached it anyway is never told 250.
 */
import { RelayError } from '../../errors.js';
import type { Relay, RelayAuthResult, RelayCapabilities, RelayStats, RelayTransaction } from './types.js';

export class NoRelay implements Relay {
  begin(): Promise<RelayTransaction> {
    return Promise.reject(new RelayError('no relay is configured (server.listen: [] runs no SMTP proxy)', 451));
  }

  authenticate(): Promise<RelayAuthResult> {
    return Promise.reject(new RelayError('no relay is configured to check credentials', 451));
  }

  /** No backend to learn about. */
  start(): void {}

  capabilities(): RelayCapabilities | undefined {
    return undefined;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  stats(): RelayStats {
    return { kind: 'none', backends: [], idle: 0, active: 0, opened: 0, reused: 0, transactions: 0, messages: 0, bytes: 0, failures: 0 };
  }
}
