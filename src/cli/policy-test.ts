/**
 * `auditgate policy test CASES.yaml [--config FILE]`: runs scripted sessions through a config
 * (policy-test/) and prints one line per case and a summary, like a test runner. Exit 0 when
 * every case passed, 1 on a mismatch, 2 for bad arguments or an invalid cases file or config.
 * The config: --config, else the one the cases file names, else the default.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { AuditgateError } from '../errors.js';
import { loadCases } from '../policy-test/cases.js';
import { runCases } from '../policy-test/run.js';
import { isUsageProblem, UsageProblem } from './args.js';
import type { CommandIo } from './replay.js';

const USAGE = [
  'usage: auditgate policy test CASES.yaml [--config FILE]',
  '  Runs the scripted sessions of CASES.yaml through the config on a virtual clock and checks the verdict',
  '  expected at each stage (see config/policy-tests.yaml). Exit 1 when a case fails.',
];

export async function policyCommand(argv: string[], io: CommandIo, defaultConfig: string): Promise<number> {
  let casesFile: string;
  let configFile: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { config: { type: 'string' } } });
    if (positionals[0] !== 'test') throw new UsageProblem(positionals[0] === undefined ? 'say "policy test"' : `unknown verb "policy ${positionals[0]}"`);
    if (positionals.length !== 2) throw new UsageProblem('name one cases file');
    casesFile = positionals[1]!;
    configFile = values.config;
  } catch (e) {
    if (!isUsageProblem(e)) throw e;
    io.err(`auditgate policy: ${(e as Error).message}`);
    for (const l of USAGE) io.err(l);
    return 2;
  }
  try {
    const cases = loadCases(casesFile);
    const config = loadConfig(configFile ?? cases.config ?? defaultConfig);
    io.out(`policy tests ${casesFile} with ${config.file}`);
    const results = await runCases(config, cases);
    for (const r of results) {
      io.out(`${r.passed ? 'ok  ' : 'FAIL'}  ${r.name}`);
      for (const f of r.failures) io.out(`        ${f}`);
      if (r.mismatches > r.failures.length) io.out(`        … ${r.mismatches - r.failures.length} more mismatches`);
    }
    const failed = results.filter((r) => !r.passed).length;
    io.out(`${results.length - failed} passed, ${failed} failed`);
    return failed ? 1 : 0;
  } catch (e) {
    if (!(e instanceof AuditgateError)) throw e;
    io.err(`auditgate policy test: ${e.message}`);
    return 2;
  }
}
