import cluster from 'node:cluster';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { openDatabase } from '../service.js';
import { serveProcess, servePrimary, serveWorker, workerCount } from './serve-process.js';
import { CONFIG_HELP, parseOptions, type Verb } from './verb.js';

export const serve: Verb = {
  summary: 'run the HTTP API and the jobs (what npm start runs)',
  usage: `auditledger serve [--workers N]

Migrates the database, then serves the API on HOST:PORT and runs the jobs until SIGINT
or SIGTERM. A shutdown that takes longer than AUDITLEDGER_SHUTDOWN_TIMEOUT seconds ends
the process with exit code 1, logging the steps it abandoned. Exits 1 too if the embedded
PostgreSQL stops under it, and refuses to start beside another serve of the same data dir.

  --workers N   N processes serving one HOST:PORT (default 1; \`auto\`: one per core).
                The first process starts the embedded PostgreSQL and migrates; one
                worker runs the jobs; a worker that dies is restarted.

${CONFIG_HELP}`,
  async run(args) {
    const { values } = parseOptions(args, { workers: { type: 'string' } });
    const workers = workerCount(values.workers);
    const config = loadConfig();
    const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
    if (cluster.isWorker) return serveWorker(config, log);
    if (workers > 1) return servePrimary(config, log, workers);
    return serveProcess(config, log, true, (url) => process.stdout.write(`auditledger listening on ${url}\n`));
  },
};

export const migrate: Verb = {
  summary: 'apply pending database migrations and exit',
  usage: `auditledger migrate\n\nApplies the numbered files in sql/ that the database has not recorded, each in a\ntransaction, under an advisory lock (safe when several processes start at once).\n\n${CONFIG_HELP}`,
  async run(args) {
    parseOptions(args, {});
    const config = loadConfig();
    const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
    const { schemaVersion, close } = await openDatabase(config, log, 'migrate');
    await close();
    process.stdout.write(`database at schema version ${schemaVersion}\n`);
    return 0;
  },
};
