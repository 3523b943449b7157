import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { openDatabase } from '../service.js';
import { loadKeyring, verifiers } from '../signing-key.js';
import { verifyChain } from '../store/chain-verify.js';
import { chainPersonalFailures } from '../store/personal.js';
import { allChains } from '../store/verification.js';
import { progressBar } from './progress.js';
import { CONFIG_HELP, parseOptions, UsageError, type Verb } from './verb.js';

export const verify: Verb = {
  summary: 'recompute whole chains from the database and report every failure',
  usage: `auditledger verify [--project ID --environment ID]

Recomputes every chain (or one) from its first event: hashes from the stored bytes, links, filter
columns, gaps, the Merkle root at every signed checkpoint and sealed bundle (signatures too) and at
the head; then compares every stored personal value and salt with its event's commitment (an
erased value is no failure). Prints a summary per chain and each failure; exit code 1 on any
failure.

${CONFIG_HELP}`,
  async run(args) {
    const { values } = parseOptions(args, { project: { type: 'string' }, environment: { type: 'string' } });
    if (Boolean(values.project) !== Boolean(values.environment)) throw new UsageError('give --project and --environment together');
    const config = loadConfig();
    const log = createLogger(config.AUDITLEDGER_LOG_LEVEL);
    const { pools, close } = await openDatabase(config, log, 'verify');
    try {
      const keys = verifiers(await loadKeyring(config, log));
      const chains = (await allChains(pools.owner)).filter((c) => !values.environment || c.environment_id === values.environment);
      if (values.environment && (chains.length === 0 || chains[0]!.project_id !== values.project)) {
        throw new UsageError(`no chain ${values.project}/${values.environment}`);
      }
      const bar = progressBar(process.stderr);
      let failed = 0;
      for (const chain of chains) {
        const name = `${chain.project_id}/${chain.environment_id}`;
        const started = performance.now();
        const result = await verifyChain(pools.owner, { project: chain.project_id, environment: chain.environment_id }, {
          verifiers: keys,
          onProgress: bar && ((seq, head) => bar(name, seq, head)),
        });
        if (bar) process.stderr.write('\r\x1b[K');
        // The chain's checks never read personal_values: no hash covers a clear value.
        const personal = await chainPersonalFailures(pools.owner, chain.environment_id);
        result.failures.push(...personal);
        if (personal.length) result.ok = false;
        const seconds = (performance.now() - started) / 1000;
        process.stdout.write(`${result.ok ? 'ok    ' : 'FAILED'} ${name}: ${result.checked} event${result.checked === 1 ? '' : 's'} to seq ${result.head_seq} in ${seconds.toFixed(1)} s\n`);
        for (const failure of result.failures) process.stdout.write(`  seq ${failure.seq}: ${failure.reason}\n`);
        if (!result.ok) failed++;
      }
      process.stdout.write(`${chains.length - failed}/${chains.length} chains valid\n`);
      return failed ? 1 : 0;
    } finally {
      await close();
    }
  },
};
