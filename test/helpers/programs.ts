/**
 * External programs that integration tests drive (postfix, miltertest, ...). A missing program
 * skips the suite with a loud banner on a laptop and FAILS it in CI (CI=true), like the Redis
 * suites: call requireProgram() at the top level of the test file and guard the suite with
 * describe.skipIf(!ok).
 */
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'vitest';
import { IN_CI } from './redis.js';

/** Directories searched after PATH: Debian puts postfix and postconf in /usr/sbin, often not on a user's PATH. */
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

/** Absolute path of an executable `name`, or undefined. */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface RequireProgramOptions {
  /** Debian package that provides it, for the banner. */
  pkg: string;
  /** What the suite proves, for the banner. */
  purpose: string;
  /** The program must run as root (Postfix's master does). */
  root?: boolean;
}

/**
 * Call at the top level of a test file. Returns true when the suite can run. Otherwise prints
 * a banner; under CI it also adds a failing test naming what is missing.
 */
export function requireProgram(name: string, opts: RequireProgramOptions): boolean {
  let problem: string | undefined;
  if (!findProgram(name)) problem = `${name} not found (Debian package "${opts.pkg}")`;
  else if (opts.root && process.getuid?.() !== 0) problem = `${name} must run as root for these tests (running as uid ${process.getuid?.()})`;
  if (!problem) return true;
  const msg = `${problem}: ${opts.purpose} ${IN_CI ? 'FAIL (CI=true)' : 'are SKIPPED'}`;
  console.warn(`\n${'*'.repeat(msg.length + 8)}\n*** ${msg} ***\n${'*'.repeat(msg.length + 8)}\n`);
  if (IN_CI) {
    it(`${name} is available`, () => {
      throw new Error(msg);
    });
  }
  return false;
}

/** The absolute path, or throws: for helpers called only after requireProgram() passed. */
export function programPath(name: string): string {
  const p = findProgram(name);
  if (!p) throw new Error(`${name} not found on PATH or in ${EXTRA_DIRS.join(', ')}`);
  return p;
}
