import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

// The V8 flags the service runs with (src/cli/bin.js says why), given at start-up wherever it is started.
const FLAGS = ['--max-semi-space-size=64', '--no-allocation-site-pretenuring'];

describe('the V8 flags of the service', () => {
  it('are the same in bin.js, npm start, npm run auditledger, the Dockerfile and the bench', () => {
    const shebang = read('src/cli/bin.js').split('\n')[0]!;
    expect(shebang).toBe(`#!/usr/bin/env -S node ${FLAGS.join(' ')}`);
    const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(scripts.start).toBe(`exec node ${FLAGS.join(' ')} src/cli/bin.js serve`);
    expect(scripts.auditledger).toBe(`exec node ${FLAGS.join(' ')} src/cli/bin.js`);
    expect(read('Dockerfile')).toContain(`CMD ${JSON.stringify(['node', ...FLAGS, 'dist/cli/bin.js', 'serve']).replaceAll(',', ', ')}`);
    expect(read('scripts/bench.ts')).toContain(`const SERVICE_FLAGS = [${FLAGS.map((f) => `'${f}'`).join(', ')}];`);
  });
});
