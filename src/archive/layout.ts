// Where things live in the archive: the layout the writers and the offline verifiers share. Each
// key has its builder and, beside it, its parser (after tessera's api/layout/paths.go); a parser
// accepts exactly what its builder makes, so one object has one key.
import { parseTilePath, tilePath, type TilePath } from '../ledger/tiles.js';

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A chain, as archive keys name it. */
export interface ChainName {
  project: string;
  environment: string;
}

/** A chain's checkpoint of a given size; zero-padded so keys sort by size. */
export function checkpointKey(project: string, environment: string, size: number): string {
  return `checkpoints/${project}/${environment}/${String(size).padStart(16, '0')}.note`;
}

/** The chain and tree size a checkpointKey names; undefined for any other key. */
export function parseCheckpointKey(key: string): (ChainName & { size: number }) | undefined {
  const [top, project = '', environment = '', file = '', ...rest] = key.split('/');
  const size = Number(file.replace(/\.note$/, ''));
  if (top !== 'checkpoints' || rest.length || !Number.isSafeInteger(size)) return undefined;
  return checkpointKey(project, environment, size) === key ? { project, environment, size } : undefined;
}

/** A chain's sealed bundle of one UTC day. */
export function bundleKey(project: string, environment: string, day: string): string {
  return `bundles/${project}/${environment}/${day}.ndjson`;
}

/** The chain and day a bundleKey names; undefined for any other key. */
export function parseBundleKey(key: string): (ChainName & { day: string }) | undefined {
  const [top, project = '', environment = '', file = '', ...rest] = key.split('/');
  const day = file.replace(/\.ndjson$/, '');
  if (top !== 'bundles' || rest.length || !DAY.test(day)) return undefined;
  return bundleKey(project, environment, day) === key ? { project, environment, day } : undefined;
}

/**
 * The folder of a chain's C2SP tlog-tiles hash tiles: `tlog/<project>/<environment>`, under which
 * `tile/<L>/<N>[.p/<W>]` lie exactly as https://c2sp.org/tlog-tiles lays them out. There is no
 * `checkpoint` object in it: an object there would have to change, and archived objects never do.
 * The chain's signed checkpoints are the size-named notes of checkpointKey; a static client picks
 * one (the last key of `checkpoints/<project>/<environment>/` is the latest).
 */
export function tlogPrefix(project: string, environment: string): string {
  return `tlog/${project}/${environment}`;
}

/** A chain's hash tile, at its C2SP path under tlogPrefix. */
export function tileKey(project: string, environment: string, tile: Omit<TilePath, 'kind'>): string {
  return `${tlogPrefix(project, environment)}/${tilePath({ ...tile, kind: 'hash' })}`;
}

/** The chain and tile a tileKey names; undefined for any other key (entry bundles included: none are archived). */
export function parseTileKey(key: string): (ChainName & { tile: TilePath }) | undefined {
  const [top, project = '', environment = '', ...path] = key.split('/');
  const tile = parseTilePath(path.join('/'));
  if (top !== 'tlog' || !tile || tile.kind !== 'hash') return undefined;
  return tileKey(project, environment, tile) === key ? { project, environment, tile } : undefined;
}
