/** Where things live in the archive: the layout writers and offline verifiers share. */

/** A chain's checkpoint of a given size; zero-padded so keys sort by size. */
export function checkpointKey(project: string, environment: string, size: number): string {
  return `checkpoints/${project}/${environment}/${String(size).padStart(16, '0')}.note`;
}

/** A chain's sealed bundle of one UTC day. */
export function bundleKey(project: string, environment: string, day: string): string {
  return `bundles/${project}/${environment}/${day}.ndjson`;
}
