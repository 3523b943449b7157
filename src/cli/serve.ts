import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { openDatabase, startService } from '../service.js';
import { CONFIG_HELP, parseOptions, type Verb } from './verb.js';

export const serve: Verb = {
  summary: 'run the HTTP API and the jobs (what npm start runs)',
  usage: `auditledger serve

Migrates the database, then serves the API on HOST:PORT and runs the jobs until SIGINT
or SIGTERM. A shutdown that takes longer than AUDITLEDGER_SHUTDOWN_TIMEOUT seconds ends
the process with exit code 1, logging the steps it abandoned. Exits 1 too if the embedded
PostgreSQL stops under it, and refuses to start beside another serve of the same data dir.

${CONFIG_HELP}`,
  async run(args) {
    parseOptions(args, {});
    const config = loadConfig();
    const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
    const service = await startService(config, log);
    // Signals during shutdown are ignored (the deadline bounds it): Ctrl-C under `npm start`
    // reaches us twice, from the terminal and forwarded by npm. The handlers are in place before
    // the line below says we listen: a signal sent on seeing it must not meet the default action.
    let stopping = false;
    const signalled = new Promise<NodeJS.Signals | Error>((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => stopping || resolve(signal);
      process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
      void service.failed.then(resolve);
    });
    process.stdout.write(`auditledger listening on ${service.url}\n`);
    const reason = await signalled;
    stopping = true;
    if (reason instanceof Error) log.fatal(`${reason.message}; exiting`);
    else log.info({ signal: reason }, 'shutting down');

    const timeout = config.AUDITLEDGER_SHUTDOWN_TIMEOUT;
    const deadline = setTimeout(() => {
      log.error(`shutdown did not end within ${timeout} s; abandoned: ${service.pending().join(', ') || 'whatever still holds the process open'}`);
      process.exit(1);
    }, timeout * 1000);
    try {
      await service.stop();
    } catch (error) {
      log.error({ err: error }, 'shutdown failed');
      return 1;
    } finally {
      // Stays armed for anything that keeps the process alive after the last step.
      deadline.unref();
    }
    return reason instanceof Error ? 1 : 0;
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
