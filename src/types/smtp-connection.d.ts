// smtp-server exports its connection class at "smtp-server/lib/smtp-connection.js" without types.
declare module 'smtp-server/lib/smtp-connection.js' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';
  import type { SMTPServer, SMTPServerSession } from 'smtp-server';
  import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
  export class SMTPConnection extends EventEmitter {
    constructor(server: SMTPServer, socket: Socket, options: Record<string, unknown>);
    session: SMTPServerSession;
    /** The server instance the connection belongs to (its options are the session's). */
    _server: SMTPServer & { options: { allowInsecureAuth?: boolean } };
    /** True once STARTTLS completed (or on an implicit-TLS listener). */
    secure: boolean;
    /** The HELO/EHLO name, lower-cased; false before any. */
    hostNameAppearsAs: string | false;
    handler_EHLO(command: Buffer, callback: () => void): void;
    handler_HELO(command: Buffer, callback: () => void): void;
    _setListeners(callback: () => void): void;
    connectionReady(next?: () => void): void;
    send(code: number, message: string | string[], context?: unknown): void;
    /** The connection id (`session.id`). */
    id: string;
    remoteAddress: string;
    /** The socket in use: the TLS socket after STARTTLS. */
    _socket: Socket;
    _onCommand(command: Buffer, callback?: () => void): void;
    /** Set while a multi-line exchange (AUTH LOGIN) waits for the client's next line. */
    _nextHandler: unknown;
    /** True while a STARTTLS handshake runs. */
    _upgrading: boolean;
    close(): void;
    /** Set once close() ran. */
    _closing: boolean;
    /** The server name (options.name): the host in replies. */
    name: string;
    /** Makes the command parser the socket is piped into (again after STARTTLS). */
    _createParser(): SMTPStream;
    /** Clears the envelope: after a message's final reply, RSET, HELO/EHLO, STARTTLS. */
    _resetSession(): void;
    /** The parser; false once the connection closed. */
    _parser: SMTPStream | false;
    /** The message stream while DATA runs; false (or null) otherwise. */
    _dataStream: unknown;
    /** True while an application hook (onMailFrom, onRcptTo, ...) has not called back. */
    _handlerPending: boolean;
  }
}
