import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { openDatabase, startService } from '../service.js';
import { CONFIG_HELP, type Verb } from './verb.js';

export const serve: Verb = {
  summary: 'run the HTTP API and the jobs (what npm start runs)',
  usage: `auditledger serve\n\nMigrates the database, then serves the API on HOST:PORT and runs the jobs until SIGINT\nor SIGTERM.\n\n${CONFIG_HELP}`,
  async run(args) {
    parseArgs({ args, options: {}, strict: true });
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
};

export const migrate: Verb = {
  summary: 'apply pending database migrations and exit',
  usage: `auditledger migrate\n\nApplies the numbered files in sql/ that the database has not recorded, each in a\ntransaction, under an advisory lock (safe when several processes start at once).\n\n${CONFIG_HELP}`,
  async run(args) {
    parseArgs({ args, options: {}, strict: true });
    const config = loadConfig();
    const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
    const { pools, embedded, schemaVersion } = await openDatabase(config, log);
    await pools.end();
    await embedded?.stop();
    process.stdout.write(`database at schema version ${schemaVersion}\n`);
    return 0;
  },
};
