#!/usr/bin/env node
/** The `auditgate` executable (package.json bin): runs the command of src/cli/main.ts. */
import { main } from './cli/main.js';

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
