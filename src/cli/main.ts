import { ConfigError } from '../config.js';
import { InUseError } from '../store/embedded.js';
import { DatabaseUnavailableError } from '../store/errors.js';
import { archive } from './archive.js';
import { key, keygen, verifyProof } from './keys.js';
import { seal } from './seal.js';
import { migrate, serve } from './serve.js';
import { verify } from './verify.js';
import { verifyArchiveVerb } from './verify-archive.js';
import { UsageError, type Verb } from './verb.js';

/** The `auditledger` command. */
const verbs: Record<string, Verb> = { serve, migrate, keygen, key, 'verify-proof': verifyProof, archive, seal, verify, 'verify-archive': verifyArchiveVerb };

function overview(): string {
  const width = Math.max(...Object.keys(verbs).map((v) => v.length));
  const lines = Object.entries(verbs).map(([name, verb]) => `  ${name.padEnd(width)}  ${verb.summary}`);
  return `usage: auditledger <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'auditledger <command> --help' for a command's usage.\n`;
}

/**
 * Exit codes: 0 done, 1 failed (a verification failure, an unreachable database, anything else
 * that went wrong), 2 usage, 78 configuration (EX_CONFIG). Every error is one line on stderr; the
 * stack of an unexpected one follows only with AUDITLEDGER_LOG_LEVEL=debug or trace.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(overview());
    return name ? 0 : 2;
  }
  const verb = verbs[name];
  if (!verb) {
    process.stderr.write(`auditledger: unknown command '${name}'\n\n${overview()}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${verb.usage}\n`);
    return 0;
  }
  try {
    return await verb.run(args);
  } catch (error) {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    const known = usage || error instanceof ConfigError || error instanceof InUseError || error instanceof DatabaseUnavailableError;
    const message = error instanceof Error ? error.message || error.name : String(error);
    process.stderr.write(`auditledger ${name}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    if (!known && /^(debug|trace)$/.test(process.env.AUDITLEDGER_LOG_LEVEL ?? '')) process.stderr.write(`${(error as Error).stack}\n`);
    return error instanceof ConfigError ? 78 : usage ? 2 : 1;
  }
}

// The AWS SDK warns on Node.js 20, over several lines of stderr, that its releases after January
// 2027 will need Node.js 22: news for whoever upgrades the pinned SDK, not for a user of this one.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.exitCode = await main(process.argv.slice(2));
