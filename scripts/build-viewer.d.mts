// Types of build-viewer.mjs, for the tests that build the viewer before serving it.
/** Default output files: the server's copy and the client package's. */
export declare const VIEWER_OUTPUTS: string[];
/** Builds the viewer bundle, writes it (and a .d.ts) to each output, and returns its text. */
export declare function buildViewer(outputs?: string[]): Promise<string>;
