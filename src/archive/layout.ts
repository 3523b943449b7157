// Where things live in the archive: the layout the writers and the offline verifiers share. Each
// key has its builder and, beside it, its parser (after tessera's api/layout/paths.go); a parser
// accepts exactly what its builder makes, so one object has one key.
import { parseTilePath, tilePath, type TilePath } from '../ledger/tiles.js';
import { isUtcDay } from '../utc-day.js';

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

/**
 * A chain's sealed bundle `part` (1, 2, …) of one UTC day: the first is `<day>.ndjson`, as when a
 * day was always one bundle, the k-th after it `<day>.<k>.ndjson`.
 */
export function bundleKey(project: string, environment: string, day: string, part = 1): string {
  return `${bundleDayPrefix(project, environment, day)}${part === 1 ? '' : `.${part}`}.ndjson`;
}

/** What every bundleKey of a chain's day starts with, and no other key the writers make. */
export function bundleDayPrefix(project: string, environment: string, day: string): string {
  return `bundles/${project}/${environment}/${day}`;
}

/** The chain, day and part a bundleKey names; undefined for any other key. */
export function parseBundleKey(key: string): (ChainName & { day: string; part: number }) | undefined {
  const [top, project = '', environment = '', file = '', ...rest] = key.split('/');
  const match = /^(\d{4}-\d{2}-\d{2})(?:\.([1-9][0-9]{0,8}))?\.ndjson$/.exec(file);
  if (top !== 'bundles' || rest.length || !match || !isUtcDay(match[1]!)) return undefined;
  const day = match[1]!;
  const part = match[2] === undefined ? 1 : Number(match[2]);
  return bundleKey(project, environment, day, part) === key ? { project, environment, day, part } : undefined;
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
