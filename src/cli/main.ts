import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { openDatabase, startService } from '../service.js';

/** The `auditledger` command. Each verb has a summary, its usage, and a run function. */
interface Verb {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

const CONFIG_HELP = `Configuration comes from the environment; see README.md for every variable.
DATABASE_URL unset: an embedded PostgreSQL under AUDITLEDGER_DATA_DIR (default ./.auditledger).`;

function noOptions(args: string[]) {
  parseArgs({ args, options: {}, allowPositionals: false, strict: true });
}

const verbs: Record<string, Verb> = {
  serve: {
    summary: 'run the HTTP API (what npm start runs)',
    usage: `auditledger serve\n\nMigrates the database, then serves the API on HOST:PORT until SIGINT or SIGTERM.\n\n${CONFIG_HELP}`,
    async run(args) {
      noOptions(args);
      const config = loadConfig();
      const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
      const service = await startService(config, log);
      process.stdout.write(`auditledger listening on ${service.url}\n`);
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          log.info({ signal }, 'shutting down');
          process.off('SIGINT', shutdown).off('SIGTERM', shutdown);
          service.stop().then(resolve, (error: unknown) => {
            log.error({ err: error }, 'shutdown failed');
            resolve();
          });
        };
        process.on('SIGINT', shutdown).on('SIGTERM', shutdown);
      });
      return 0;
    },
  },
  migrate: {
    summary: 'apply pending database migrations and exit',
    usage: `auditledger migrate\n\nApplies the numbered files in sql/ that the database has not recorded, each in a\ntransaction, under an advisory lock (safe when several processes start at once).\n\n${CONFIG_HELP}`,
    async run(args) {
      noOptions(args);
      const config = loadConfig();
      const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
      const { pools, embedded, schemaVersion } = await openDatabase(config, log);
      await pools.end();
      await embedded?.stop();
      process.stdout.write(`database at schema version ${schemaVersion}\n`);
      return 0;
    },
  },
};

function overview(): string {
  const width = Math.max(...Object.keys(verbs).map((v) => v.length));
  const lines = Object.entries(verbs).map(([name, verb]) => `  ${name.padEnd(width)}  ${verb.summary}`);
  return `usage: auditledger <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'auditledger <command> --help' for a command's usage.\n`;
}

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
    const message = error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
      ? (error as Error).message
      : (error as Error).stack ?? String(error);
    process.stderr.write(`auditledger ${name}: ${message}\n`);
    return error instanceof ConfigError ? 78 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
