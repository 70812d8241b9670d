/**
 * Gateway-wide events: what parts of the gateway tell each other without holding each other
 * (metrics learn relay latency, the console streams decisions). A typed EventEmitter; an
 * event nobody listens to costs one listener-count check.
 */
import { EventEmitter } from 'node:events';

export type RelayCommand = 'mail' | 'rcpt' | 'data';

/** A verdict of the session engine other than continue, as the console streams it. */
export interface DecisionEvent {
  /** Epoch ms (injected clock). */
  at: number;
  cid: string;
  /** The front that asked: smtp, milter or policy. */
  front: string;
  stage: string;
  /** The client's address text ('' when it has none). */
  client: string;
  action: 'accept' | 'tarpit' | 'tempfail' | 'reject';
  /** The policy that decided, when one did (a ban names the policy that issued it). */
  policy?: string;
  /** The SMTP reply of a refusal: "421 4.7.0 text". */
  reply?: string;
  /** The banned prefix, for a refusal of a banned client. */
  ban?: string;
}

export interface GatewayEventMap {
  /** The backend answered a relayed command after `seconds`. */
  relayLatency: [command: RelayCommand, seconds: number];
  /** The engine decided something other than continue (published, never awaited). */
  decision: [event: DecisionEvent];
}

export class GatewayEvents extends EventEmitter<GatewayEventMap> {
  constructor() {
    super();
    this.setMaxListeners(100);
  }
}
