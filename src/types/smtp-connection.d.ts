// smtp-server exports its connection class at "smtp-server/lib/smtp-connection.js" without types.
declare module 'smtp-server/lib/smtp-connection.js' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';
  import type { SMTPServer } from 'smtp-server';
  export class SMTPConnection extends EventEmitter {
    constructor(server: SMTPServer, socket: Socket, options: Record<string, unknown>);
    _setListeners(callback: () => void): void;
    connectionReady(next?: () => void): void;
    send(code: number, message: string, context?: unknown): void;
  }
}
