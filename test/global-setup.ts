/** Builds dist/ once before the suites that run the compiled CLI in child processes. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const r = spawnSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  if (!existsSync(`${root}dist/src/cli.js`)) {
    throw new Error(`build for the CLI tests failed:\n${r.stdout}\n${r.stderr}`);
  }
}
