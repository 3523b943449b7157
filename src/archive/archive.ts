import { constants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { ReadInto } from '../ledger/buffer-pool.js';

export type { ReadInto };

/**
 * The archive: write-once object storage outside the database, where checkpoints and sealed
 * bundles are kept so that they outlive anything done to PostgreSQL.
 */
export interface Archive {
  /** Where objects go, for messages: a folder path or an s3:// URL. */
  readonly location: string;
  /**
   * Stores `body` under `key` once. Writing the same bytes again is a no-op; writing other bytes
   * to an existing key is refused with ArchiveConflictError.
   */
  put(key: string, body: ArchiveBody): Promise<PutResult>;
  /**
   * The object's bytes, or undefined when there is none. Throws ObjectTooLargeError for an object
   * of more than MAX_OBJECT_BYTES, which cannot be held in memory, and UnreadableObjectError for one
   * that is no regular file or reads shorter than its size. With `into`, they are read into
   * the memory it gives for their size (a Buffer of at least that many bytes; the bytes returned
   * are its start), when the size is known before reading: a reader of many large objects reuses
   * its memory so (BufferPool).
   */
  get(key: string, into?: ReadInto): Promise<Buffer | undefined>;
  /** The SHA-256 of the object's bytes, read as a stream, or undefined when there is none. */
  sha256(key: string): Promise<Buffer | undefined>;
  /**
   * Who the object is now, without reading its bytes (a stat, a HEAD), or undefined when there is
   * none: what a cache of the object compares before trusting what it read earlier.
   */
  identity(key: string): Promise<ObjectIdentity | undefined>;
  /** Keys under `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** How the object is protected from deletion, or undefined when there is no such object. */
  retention(key: string): Promise<Retention | undefined>;
}

/** What put stores: bytes in memory, or a file too large to hold there, with its digests. */
export type ArchiveBody = Buffer | FileBody;

export interface FileBody {
  path: string;
  size: number;
  sha256: Buffer;
  md5: Buffer;
}

/** A file as an archive body: its size and digests, read as a stream. */
export async function fileBody(path: string): Promise<FileBody> {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    sha256.update(chunk);
    md5.update(chunk);
    size += chunk.length;
  }
  return { path, size, sha256: sha256.digest(), md5: md5.digest() };
}

export function bodySha256(body: ArchiveBody): Buffer {
  return Buffer.isBuffer(body) ? createHash('sha256').update(body).digest() : body.sha256;
}

export function bodyMd5(body: ArchiveBody): Buffer {
  return Buffer.isBuffer(body) ? createHash('md5').update(body).digest() : body.md5;
}

/** SHA-256 of a stream of bytes. */
export async function streamSha256(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest();
}

/** An archived object's identity, as Archive.identity reads it. */
export interface ObjectIdentity {
  /** Its size in bytes. */
  bytes: number;
  /** The S3 version the key now names; undefined for the local folder and unversioned buckets. */
  versionId?: string | undefined;
  /**
   * Changes whenever the bytes may have. S3: the version id, the ETag and the size. Local folder:
   * the inode, the size, the modification time and the status-change time in nanoseconds; a
   * writer can set the modification time back (utimes), but not the change time, which any write,
   * chmod or utimes moves to the present.
   */
  stamp: string;
}

export interface Retention {
  /** NONE for the local folder, which relies on file modes rather than a retention lock. */
  mode: 'COMPLIANCE' | 'GOVERNANCE' | 'NONE';
  retainUntil?: Date | undefined;
  /** The object version the lock protects (S3 keeps every version). */
  versionId?: string | undefined;
}

export interface PutResult {
  /** The version written or found (S3); undefined for the local folder. */
  versionId?: string | undefined;
}

export class ArchiveConflictError extends Error {
  constructor(readonly key: string) {
    super(`archive object ${key} exists with different bytes; archived objects are never replaced`);
    this.name = 'ArchiveConflictError';
  }
}

/** The most bytes get() returns: the largest Buffer this Node.js makes (4 GiB on Node.js 20). */
export const MAX_OBJECT_BYTES = constants.MAX_LENGTH;

export class ObjectTooLargeError extends Error {
  constructor(
    readonly key: string,
    readonly size: number,
  ) {
    super(`archive object ${key} is ${size} bytes, more than the ${MAX_OBJECT_BYTES} that can be read into memory`);
    this.name = 'ObjectTooLargeError';
  }
}

/**
 * An object whose bytes cannot be read as they are listed: not a regular file (a FIFO, a socket, a
 * device), or fewer bytes than its size (a file cut while read, an S3 body shorter or longer than
 * its Content-Length). An error of that object, not of the archive.
 */
export class UnreadableObjectError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`archive object ${key} ${problem}`);
    this.name = 'UnreadableObjectError';
  }
}

// Errors of one file where an object was listed, not of the archive: a link loop, no permission, a file where a folder was.
const OBJECT_ERRORS = new Set(['EACCES', 'EPERM', 'ELOOP', 'ENOTDIR']);

/**
 * The object's bytes, or why they cannot be read: it vanished since it was listed, it is too
 * large to hold (more than MAX_OBJECT_BYTES), or its file cannot be read (a folder, no
 * permission, no regular file, fewer bytes than its size). A verifier reports such an object and checks the others; what is wrong with the
 * archive as a whole (S3 refusing the credentials, the network) still throws.
 */
export async function readOrWhyNot(archive: Archive, key: string, into?: ReadInto): Promise<Buffer | string> {
  try {
    return (await archive.get(key, into)) ?? 'listed, but it could not be read';
  } catch (error) {
    const problem = objectReadProblem(error);
    if (problem === undefined) throw error;
    return problem;
  }
}

/**
 * Why one object cannot be read, when `error` (thrown by Archive.get or Archive.identity) concerns
 * that object alone: it is too large to hold, or its file is a folder, a link loop or not
 * readable. Undefined for any other error, which concerns the archive as a whole. The text names
 * no path on this machine (callers name the key), so it can be shown to a tenant.
 */
export function objectReadProblem(error: unknown): string | undefined {
  if (error instanceof ObjectTooLargeError) return `the object is ${error.size} bytes: this verifier reads an object whole, and can hold at most ${MAX_OBJECT_BYTES}`;
  if (error instanceof UnreadableObjectError) return `the object ${error.problem}`;
  const { code, path: where } = error as NodeJS.ErrnoException;
  if (code === undefined || !OBJECT_ERRORS.has(code)) return undefined;
  return where === undefined ? (error as Error).message : (error as Error).message.replace(` '${where}'`, '');
}

/** Throws ObjectTooLargeError when an object of `size` bytes cannot be read into memory. */
export function assertReadable(key: string, size: number): void {
  if (size > MAX_OBJECT_BYTES) throw new ObjectTooLargeError(key, size);
}

const SAFE_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/** Keys are relative paths of safe characters: no `..`, no leading slash, no empty segment. */
export function checkKey(key: string): void {
  if (!SAFE_KEY.test(key) || key.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`invalid archive key: ${JSON.stringify(key)}`);
  }
}
