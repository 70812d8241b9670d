// Shared by the test/unit/config/*.test.ts files.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { parseConfigText } from '../../../src/config/load.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = path.join(ROOT, 'test/fixtures/config');
export const DEFAULT_CONFIG = path.join(ROOT, 'config/auditgate.yaml');
/** Fixture paths as the loader prints them when given a path relative to the cwd. */
export const fixture = (name: string) => path.relative(process.cwd(), path.join(FIXTURES, name));

export const FILE = '/etc/auditgate/test.yaml';
export const RELAY = 'relay:\n  url: smtp://127.0.0.1:10025\n';

/** The problems of an invalid config (fails the test when the config is valid). */
export function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, the config was accepted');
}

export const problems = (text: string) => problemsOf(() => parseConfigText(text, FILE));
