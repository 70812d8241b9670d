import { formatConfig, loadConfig } from '../config/load.js';

/** `auditgate check-config`: validates a config, prints its warnings (stderr) and the effective config (stdout). */
export function checkConfig(file: string): number {
  const config = loadConfig(file);
  for (const w of config.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(`# ${config.file}: valid${config.warnings.length ? ` (${config.warnings.length} warning${config.warnings.length > 1 ? 's' : ''})` : ''}\n`);
  process.stdout.write(formatConfig(config));
  return 0;
}
