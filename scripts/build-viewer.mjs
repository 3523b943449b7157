// `npm run build` (and packages/client's prepack): bundles the <auditledger-viewer> web component
// (src/viewer) into ONE self-contained ES module, Lit and the ledger's verification code included,
// written to dist/viewer (served by the server at /viewer/auditledger-viewer.js) and to
// packages/client/dist/viewer (the client package's `@auditledger/client/viewer`).
// src/ledger uses node:crypto and Buffer: the bundle gets browser stand-ins (src/viewer/shims).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Default output files: the server's copy and the client package's. */
export const VIEWER_OUTPUTS = [path.join(root, 'dist/viewer/auditledger-viewer.js'), path.join(root, 'packages/client/dist/viewer/auditledger-viewer.js')];

const DECLARATION = `// <auditledger-viewer token="alv_…" url="https://ledger.example" vkey="…">: see README "Embedding the viewer".
export declare class AuditledgerViewer extends HTMLElement {
  /** A viewer token (alv_…) for one group. */
  token: string;
  /** The ledger's base URL. */
  url: string;
  /** Pinned verifier key(s), separated by whitespace or commas; honoured over the server's /v1/keys. */
  vkey: string;
}
declare global {
  interface HTMLElementTagNameMap {
    'auditledger-viewer': AuditledgerViewer;
  }
}
`;

/**
 * Builds the bundle (minified, ES2022, no source map) and writes it, with a type declaration
 * beside it, to each of `outputs`. Returns the bundle's text. Throws esbuild's error on a build failure.
 */
export async function buildViewer(outputs = VIEWER_OUTPUTS) {
  const result = await build({
    entryPoints: [path.join(root, 'src/viewer/auditledger-viewer.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    legalComments: 'eof',
    alias: { 'node:crypto': path.join(root, 'src/viewer/shims/crypto.ts') },
    inject: [path.join(root, 'src/viewer/shims/buffer.ts')],
    logLevel: 'silent',
  });
  const text = result.outputFiles[0].text;
  for (const output of outputs) {
    await mkdir(path.dirname(output), { recursive: true });
    await writeFile(output, text);
    await writeFile(output.replace(/\.js$/, '.d.ts'), DECLARATION);
  }
  return text;
}

// Silent on success, as tsc is: `npm pack --json` reads the build's stdout.
if (process.argv[1] === fileURLToPath(import.meta.url)) await buildViewer();
