/**
 * Gateway-wide events: what parts of the gateway tell each other without holding each other
 * (metrics learn relay latency, the console will stream decisions). A typed EventEmitter; an
 * event nobody listens to costs one listener-count check.
 */
import { EventEmitter } from 'node:events';

export type RelayCommand = 'mail' | 'rcpt' | 'data';

export interface GatewayEventMap {
  /** The backend answered a relayed command after `seconds`. */
  relayLatency: [command: RelayCommand, seconds: number];
}

export class GatewayEvents extends EventEmitter<GatewayEventMap> {
  constructor() {
    super();
    this.setMaxListeners(100);
  }
}
