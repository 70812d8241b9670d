/**
 * One MTA connection to the policy service (Postfix's check_policy_service keeps one per smtpd
 * process and sends it many requests). A thin translator: each request finds its session
 * (sessions.ts), runs the stage its protocol_state names and is answered:
 *
 *   continue → action=DUNNO · accept → action=OK · tempfail / reject → action=<code> <enhanced> <text>
 *   from the one reply table (Postfix puts its own context before the text) · tarpit → the answer
 *   is held back, then DUNNO (keep delays under smtpd_policy_service_timeout, 100 s by default)
 *
 * A request that is not `smtpd_access_policy`, or whose protocol_state names no stage (VRFY,
 * ETRN), is answered DUNNO. DATA and END-OF-MESSAGE both map to the data stage, which runs once
 * per transaction (at whichever comes first); END-OF-MESSAGE let through counts a reception.
 */
import type net from 'node:net';
import type { PolicyProtocolError } from '../errors.js';
import type { Verdict } from '../audit/session.js';
import { andThen, MtaConnection, type Decoded, type MtaConnectionDeps } from '../mta/connection.js';
import { encodeAction, protocolStateToStage, PolicyDecoder, type PolicyAction } from './codec.js';
import type { PolicyRequest } from './request.js';
import type { PolicySession, PolicySessions } from './sessions.js';

export interface PolicyConnectionDeps extends MtaConnectionDeps {
  sessions: PolicySessions;
}

/** A verdict as a policy action. */
export function policyAction(v: Verdict): PolicyAction {
  switch (v.action) {
    case 'accept':
      return 'OK';
    case 'tempfail':
    case 'reject':
      // eslint-disable-next-line no-control-regex
      return { code: v.reply.code, text: `${v.reply.enhanced} ${v.reply.text}`.replace(/[\x00-\x1f\x7f]/g, ' ') };
    default:
      return 'DUNNO';
  }
}

const DUNNO = encodeAction('DUNNO');

export class PolicyConnection extends MtaConnection<PolicyRequest> {
  private readonly decoder = new PolicyDecoder();
  /** The session of the request being answered, for log lines. */
  private current: PolicySession | undefined;

  constructor(
    socket: net.Socket,
    private readonly policy: PolicyConnectionDeps,
  ) {
    super(socket, policy);
  }

  protected decode(chunk: Buffer): Decoded<PolicyRequest> {
    const r = this.decoder.push(chunk);
    return r.error ? { items: r.requests, error: r.error } : { items: r.requests };
  }

  protected finish(): PolicyProtocolError | undefined {
    return this.decoder.end();
  }

  protected describe(): Record<string, unknown> {
    return { cid: this.current?.s.cid, client: this.current?.s.client?.text, peer: this.socket.remoteAddress ?? 'unix' };
  }

  /** Sessions outlive the connection (Postfix may ask about one over another connection). */
  protected release(): void {}

  /** Exim's ${readsocket} shuts its side down after the request and then reads the answer. */
  protected answersAfterEnd(): boolean {
    return true;
  }

  protected handle(q: PolicyRequest): void | Promise<void> {
    this.deps.stats.events++;
    const stage = protocolStateToStage(q.protocol_state);
    if ((q.request !== undefined && q.request !== 'smtpd_access_policy') || stage === undefined) {
      this.deps.logger.debug({ request: q.request, protocol_state: q.protocol_state }, 'policy request with no stage: DUNNO');
      this.write(DUNNO);
      return;
    }
    const e = this.policy.sessions.forRequest(q, stage);
    this.current = e;
    const s = e.s;
    const eom = q.protocol_state === 'END-OF-MESSAGE';
    if (stage === 'data' && e.dataDone) {
      if (eom) this.deps.engine.delivered(s);
      this.write(DUNNO);
      return;
    }
    if (stage === 'data') e.dataDone = true;
    return andThen(this.decide(s, stage), (v) => {
      const through = v.action !== 'tempfail' && v.action !== 'reject';
      if (through && stage === 'rcpt') s.rcpts.push(s.rcpt ?? '');
      if (through && eom) this.deps.engine.delivered(s);
      this.write(encodeAction(policyAction(v)));
    });
  }
}
