import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/config.js';

describe('README', () => {
  it('documents every configuration variable, and only those', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.split('## Configuration')[1]!.split('\n## ')[0]!;
    const documented = [...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(configSchema.shape).sort());
  });

  it('names npm test as the test command', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toMatch(/## Tests\n\n```sh\nnpm test\n```/);
  });

  it('gives no npx command, in the README or any usage text: outside a checkout npx runs whatever the registry holds under the name', async () => {
    const cli = new URL('../src/cli/', import.meta.url);
    const texts = [new URL('../README.md', import.meta.url), ...(await readdir(cli)).map((f) => new URL(f, cli))];
    for (const file of texts) expect(await readFile(file, 'utf8'), file.pathname).not.toMatch(/^\s*npx\s/m);
  });
});
