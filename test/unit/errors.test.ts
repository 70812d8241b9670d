import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';

describe('error catalogue', () => {
  it('documents every error code in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const codes = Object.keys(ERROR_CODES);
    expect(codes.length).toBeGreaterThan(5);
    for (const code of codes) expect(readme, code).toContain(`\`${code}\``);
  });
});
