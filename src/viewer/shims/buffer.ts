// Injected by esbuild (scripts/build-viewer.mjs) wherever the bundled src/ledger modules name the
// global `Buffer`, which browsers lack: the `buffer` package, Node's Buffer API in plain JavaScript.
export { Buffer } from 'buffer';
