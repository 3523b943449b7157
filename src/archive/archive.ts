/**
 * The archive: write-once object storage outside the database, where checkpoints and sealed
 * bundles are kept so that they outlive anything done to PostgreSQL.
 */
export interface Archive {
  /** Where objects go, for messages: a folder path or an s3:// URL. */
  readonly location: string;
  /**
   * Stores `bytes` under `key` once. Writing the same bytes again is a no-op; writing other bytes
   * to an existing key is refused with ArchiveConflictError.
   */
  put(key: string, bytes: Buffer): Promise<PutResult>;
  /** The object's bytes, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Keys under `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** How the object is protected from deletion, or undefined when there is no such object. */
  retention(key: string): Promise<Retention | undefined>;
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

const SAFE_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/** Keys are relative paths of safe characters: no `..`, no leading slash, no empty segment. */
export function checkKey(key: string): void {
  if (!SAFE_KEY.test(key) || key.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`invalid archive key: ${JSON.stringify(key)}`);
  }
}
