import { openArchive } from '../archive/open.js';
import { loadConfig } from '../config.js';
import { alertTarget } from '../jobs/alert.js';
import { runCheckpoints } from '../jobs/checkpoints.js';
import { assertSealable, dueThrough, runSeal, UnsealableDayError, type SealProgress } from '../jobs/seal.js';
import { createLogger } from '../log.js';
import { openDatabase, serverClock } from '../service.js';
import { loadKeyring } from '../signing-key.js';
import { progressBar } from './progress.js';
import { CONFIG_HELP, parseOptions, UsageError, type Verb } from './verb.js';

export const seal: Verb = {
  summary: 'seal ended days into signed bundles in the archive, now',
  usage: `auditledger seal [--through YYYY-MM-DD]

Signs checkpoints of the chains that moved, then seals every unsealed day up to --through (default:
the last day that ended more than AUDITLEDGER_SEAL_AFTER_DAYS days ago; a day that has not ended on
the server clock is refused): each chain's events of the
day become one bundle in the archive (AUDITLEDGER_ARCHIVE). Safe to run while the service runs and
to run again after a crash. A chain whose stored events are damaged is left unsealed (from that day
on), recorded as a verification finding and printed as one line on stderr; the other chains are
sealed, and the exit code is 1.

${CONFIG_HELP}`,
  async run(args) {
    const { values } = parseOptions(args, { through: { type: 'string' } });
    const config = loadConfig();
    const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
    const now = serverClock(config, log);
    if (values.through !== undefined) {
      try {
        assertSealable(values.through, now());
      } catch (error) {
        if (error instanceof UnsealableDayError) throw new UsageError(`--through: ${error.message}`);
        throw error;
      }
    }
    const { pools, close } = await openDatabase(config, log, 'seal');
    try {
      const keyring = await loadKeyring(config, log);
      const archive = openArchive(config);
      const alert = alertTarget(config);
      await runCheckpoints({ db: pools.owner, archive, key: keyring.current, origin: keyring.origin, log, alert });
      const through = values.through ?? dueThrough(now(), config.AUDITLEDGER_SEAL_AFTER_DAYS);
      const bar = progressBar(process.stderr);
      const onProgress = bar && (({ day, chain, sealed, total }: SealProgress) => bar(`${day} ${chain.slice(0, 8)}`, sealed, total));
      const deps = { db: pools.owner, archive, keyring, log, now, alert, maxEvents: config.AUDITLEDGER_BUNDLE_MAX_EVENTS, ...(onProgress ? { onProgress } : {}) };
      const report = await runSeal(deps, through);
      if (onProgress) process.stderr.write('\n');
      if (!report) {
        process.stderr.write('another seal is running; try again when it is done\n');
        return 1;
      }
      process.stdout.write(
        `sealed through ${through}: ${report.days.length} day(s), ${report.bundles} bundle(s), ${report.events} event(s) into ${archive.location}\n`,
      );
      if (report.waiting.length) process.stdout.write(`not yet sealed (no signed checkpoint covers them yet): ${report.waiting.join(', ')}\n`);
      for (const f of report.failed) {
        process.stderr.write(`not sealed: chain ${f.project}/${f.environment} ${f.day}, seq ${f.seq}: ${f.reason}\n`);
      }
      return report.failed.length ? 1 : 0;
    } finally {
      await close();
    }
  },
};
