// docs/format.md's worked examples are the ledger's output: each fenced block after a
// `<!-- format-example: NAME -->` marker must be exactly what test/helpers/format-examples.ts
// computes with the ledger code, and every example it computes must be in the document.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatExamples } from '../helpers/format-examples.js';

const DOC = 'docs/format.md';

/** The marked examples of a Markdown text, by name; throws on a marker without a fenced block or a name used twice. */
function markedExamples(markdown: string): Map<string, string> {
  const examples = new Map<string, string>();
  const marker = /<!-- format-example: ([a-z0-9-]+) -->\n```[^\n]*\n/g;
  for (let match = marker.exec(markdown); match; match = marker.exec(markdown)) {
    const name = match[1]!;
    const start = match.index + match[0].length;
    const end = markdown.indexOf('\n```\n', start - 1);
    if (end < 0) throw new Error(`example ${name}: no closing fence`);
    if (examples.has(name)) throw new Error(`example ${name} appears twice`);
    examples.set(name, markdown.slice(start, end));
  }
  return examples;
}

describe('docs/format.md', () => {
  const documented = markedExamples(readFileSync(DOC, 'utf8'));
  const computed = formatExamples();

  it('has every example the ledger computes, and no other', () => {
    expect([...documented.keys()].sort()).toEqual([...computed.keys()].sort());
  });

  for (const [name, text] of computed) {
    it(`example ${name} is what the ledger computes`, () => {
      expect(documented.get(name)).toBe(text);
    });
  }
});
