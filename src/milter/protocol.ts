/**
 * Sendmail milter protocol, version 6: constants and the typed messages of the codec.
 *
 * Numbers checked against libmilter's mfdef.h (SMFI_PROT_VERSION 6, SMFIP_* up to
 * SMFIP_HDR_LEADSPC = 1 << 20) and Postfix's milter8.c (the MTA side we talk to).
 *
 * Wire format: a 4-byte big-endian length covering the command byte and the data, the command
 * byte, the data. Strings are NUL-terminated.
 */

export const SMFI_PROT_VERSION = 6;
/** The lowest version we negotiate (Postfix: milter_protocol 2, 3, 4 or 6). */
export const SMFI_PROT_VERSION_MIN = 2;

/** libmilter's MILTER_CHUNK_SIZE: the largest body chunk an MTA sends without SMFIP_MDS_*. */
export const MILTER_CHUNK_SIZE = 65535;
/** Default bound on a packet's length field: one command byte plus a full body chunk. */
export const DEFAULT_MAX_PACKET = 1 + MILTER_CHUNK_SIZE;

/** MTA → filter commands (SMFIC_*). */
export const SMFIC = {
  ABORT: 'A',
  BODY: 'B',
  CONNECT: 'C',
  MACRO: 'D',
  BODYEOB: 'E',
  HELO: 'H',
  QUIT_NC: 'K',
  HEADER: 'L',
  MAIL: 'M',
  EOH: 'N',
  OPTNEG: 'O',
  QUIT: 'Q',
  RCPT: 'R',
  DATA: 'T',
  UNKNOWN: 'U',
} as const;
export type SmficCode = (typeof SMFIC)[keyof typeof SMFIC];

/** Filter → MTA replies (SMFIR_*) this codec encodes. */
export const SMFIR = {
  OPTNEG: 'O',
  ACCEPT: 'a',
  CONTINUE: 'c',
  DISCARD: 'd',
  PROGRESS: 'p',
  REJECT: 'r',
  SKIP: 's',
  TEMPFAIL: 't',
  REPLYCODE: 'y',
} as const;

/** Protocol flags (SMFIP_*): events the filter does not want, replies it will not send, extras. */
export const SMFIP = {
  NOCONNECT: 0x1,
  NOHELO: 0x2,
  NOMAIL: 0x4,
  NORCPT: 0x8,
  NOBODY: 0x10,
  NOHDRS: 0x20,
  NOEOH: 0x40,
  NR_HDR: 0x80,
  NOUNKNOWN: 0x100,
  NODATA: 0x200,
  SKIP: 0x400,
  RCPT_REJ: 0x800,
  NR_CONN: 0x1000,
  NR_HELO: 0x2000,
  NR_MAIL: 0x4000,
  NR_RCPT: 0x8000,
  NR_DATA: 0x10000,
  NR_UNKN: 0x20000,
  NR_EOH: 0x40000,
  NR_BODY: 0x80000,
  HDR_LEADSPC: 0x100000,
} as const;

/** Actions (SMFIF_*) a filter may ask for. auditgate only ever needs SETSYMLIST. */
export const SMFIF = {
  ADDHDRS: 0x1,
  CHGBODY: 0x2,
  ADDRCPT: 0x4,
  DELRCPT: 0x8,
  CHGHDRS: 0x10,
  QUARANTINE: 0x20,
  CHGFROM: 0x40,
  ADDRCPT_PAR: 0x80,
  SETSYMLIST: 0x100,
} as const;

/** Macro stages (SMFIM_*) for the optional macro lists of the negotiation reply. */
export const SMFIM = {
  CONNECT: 0,
  HELO: 1,
  ENVFROM: 2,
  ENVRCPT: 3,
  DATA: 4,
  EOM: 5,
  EOH: 6,
} as const;
export type MacroStage = keyof typeof SMFIM;

/** Address families of SMFIC_CONNECT (SMFIA_*). */
export const SMFIA = { UNKNOWN: 'U', UNIX: 'L', INET: '4', INET6: '6' } as const;
export type ConnectFamily = 'ipv4' | 'ipv6' | 'unix' | 'unknown';

// ---- decoded MTA → filter commands -----------------------------------------------------------

export interface OptnegCommand {
  type: 'optneg';
  version: number;
  actions: number;
  protocol: number;
}

/** Macros for the command `command` (one SMFIC_* character); a repeated name keeps the last value. */
export interface MacroCommand {
  type: 'macro';
  command: string;
  macros: ReadonlyMap<string, string>;
}

/**
 * The client. `port` and `address` are present for ipv4, ipv6 and unix (Postfix sends port 0 and
 * the socket path for unix); absent for unknown. `hostname` is "[address]" when unresolved.
 */
export interface ConnectCommand {
  type: 'connect';
  hostname: string;
  family: ConnectFamily;
  port?: number;
  address?: string;
}

export interface HeloCommand {
  type: 'helo';
  name: string;
}

/** MAIL FROM: the address as the MTA gives it (usually with <>), then the ESMTP arguments. */
export interface MailCommand {
  type: 'mail';
  sender: string;
  args: string[];
}

export interface RcptCommand {
  type: 'rcpt';
  recipient: string;
  args: string[];
}

export interface HeaderCommand {
  type: 'header';
  name: string;
  value: string;
}

export interface BodyCommand {
  type: 'body';
  chunk: Buffer;
}

/** End of message; libmilter allows a last body chunk in the same packet. */
export interface EomCommand {
  type: 'eom';
  chunk?: Buffer;
}

export interface UnknownSmtpCommand {
  type: 'unknown';
  command: string;
}

export interface BareCommand {
  type: 'data' | 'eoh' | 'abort' | 'quit' | 'quit_nc';
}

export type MilterCommand =
  | OptnegCommand
  | MacroCommand
  | ConnectCommand
  | HeloCommand
  | MailCommand
  | RcptCommand
  | HeaderCommand
  | BodyCommand
  | EomCommand
  | UnknownSmtpCommand
  | BareCommand;

export type MilterCommandType = MilterCommand['type'];
