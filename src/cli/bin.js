#!/usr/bin/env -S node --max-semi-space-size=64 --no-allocation-site-pretenuring
// The package's `auditledger` command. Built (dist/cli/bin.js, as installed) it runs the compiled
// main.js beside it; in a checkout (src/cli/bin.js) it runs main.ts through tsx, a dev dependency.
// A 64 MB young generation: the service's requests wait for their group commit, long enough to
// outlive V8's default 16 MB semi-space and be copied into the old generation. Measured with wrk
// against `serve` on 2 cores: batches of 100 +18-22%, single events +25-37%, about 100 MB more RSS.
// No allocation-site pretenuring: requests arrive together (a commit answers them together), so
// V8 can find every object of a literal alive at one scavenge and allocate that literal in the
// old generation from then on (--trace-pretenuring-statistics). Some runs then fell into a mode
// where each scavenge promoted every batch (about 6.5 MB instead of 0.4, --trace-gc-nvp) and took
// twice as long, and stayed in it. In `npm run bench -- --only personal`, (p) / (p0) was
// 0.72-0.85 with it and 0.85-0.89 without; single events did not change.
// Flags work only at start-up, so `npm start`, `npm run auditledger`, the Dockerfile and the bench
// pass them too (test/cli/node-flags.test.ts holds them to these).
import { existsSync } from 'node:fs';

const compiled = new URL('./main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./main.ts');
}
