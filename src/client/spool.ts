// The client's disk spool: events survive a ledger outage and a client restart.
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { AuditEvent } from '../ledger/event.js';

/** A queued event as spooled: its JSON (sent as is on every try) and its idempotency key. */
export interface SpooledEntry {
  json: string;
  key: string;
}
export type QueuedEvent = AuditEvent & { idempotency_key: string; created: string };

/** The chain a batch's events go to (setContext's arguments): each an id or a name. */
export interface ChainContext {
  project: string;
  environment: string;
}

const SPOOL_SUFFIX = '.jsonl';
const REJECTED_SUFFIX = '.rejected';

/**
 * One batch's spool file: its events as JSON lines, appended and fsynced as they are queued, so
 * an event is on disk moments after createEvent, long before the batch is sent. Deleted after
 * the ledger's ack; a crash mid-append leaves at most a torn last line, which recovery skips.
 */
export class SpoolFile {
  /** False once a write failed: some events of this batch exist in memory only. */
  durable = true;
  private lines: string[] = [];
  private scheduled = false;

  constructor(
    readonly file: string,
    private writes: Promise<unknown>,
    private readonly onError: (error: Error) => void,
    private exists = false,
  ) {}

  add(json: string): void {
    this.lines.push(`${json}\n`);
    if (this.scheduled) return;
    this.scheduled = true;
    // Events queued while a write is under way go out together in the next one: one fsync for all.
    this.writes = this.writes.then(() => this.writeQueued());
  }

  /** Resolves once every added event was written (or its write failed and was reported). */
  async written(): Promise<void> {
    await this.writes;
  }

  private async writeQueued(): Promise<void> {
    this.scheduled = false;
    const text = this.lines.join('');
    this.lines = [];
    try {
      await appendDurably(this.file, text, !this.exists);
      this.exists = true;
    } catch (error) {
      this.durable = false;
      this.onError(new Error(`auditledger spool: could not write ${this.file}; its events are kept in memory only`, { cause: error }));
    }
  }
}

async function appendDurably(file: string, text: string, isNew: boolean): Promise<void> {
  const handle = await open(file, 'a', 0o600);
  try {
    await handle.appendFile(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  // A new file's directory entry must be durable too, or a crash could lose the whole file.
  if (isNew) {
    const dir = await open(path.dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** The spool folder: one file per batch, named so that they sort in the order they were queued. */
export class Spool {
  /** The files an earlier client left, listed before this one writes any. */
  private readonly leftOver: Promise<string[]>;
  private count = 0;

  constructor(
    private readonly dir: string,
    private readonly onError: (error: Error) => void,
  ) {
    this.leftOver = mkdir(dir, { recursive: true, mode: 0o700 })
      .then(() => readdir(dir))
      .then(
        (names) => names.filter((name) => name.endsWith(SPOOL_SUFFIX)).sort(),
        (error: unknown) => {
          onError(new Error(`auditledger spool: cannot use ${dir}`, { cause: error }));
          return [];
        },
      );
  }

  /** A file for a new batch; its context, when it has one, is its first line (`{"context":{…}}`), so a later client sends it to the same chain. */
  newFile(context?: ChainContext): SpoolFile {
    const name = `${String(Date.now()).padStart(15, '0')}-${String(this.count++).padStart(9, '0')}-${randomUUID()}${SPOOL_SUFFIX}`;
    const file = new SpoolFile(path.join(this.dir, name), this.leftOver, this.onError);
    if (context) file.add(JSON.stringify({ context }));
    return file;
  }

  /** The batches an earlier client spooled and the ledger never acknowledged. */
  async recover(): Promise<{ spool: SpoolFile; entries: SpooledEntry[]; context: ChainContext | undefined }[]> {
    const batches = [];
    for (const name of await this.leftOver) {
      const file = path.join(this.dir, name);
      try {
        batches.push({ spool: new SpoolFile(file, Promise.resolve(), this.onError, true), ...this.parse(file, await readFile(file, 'utf8')) });
      } catch (error) {
        this.onError(new Error(`auditledger spool: cannot read ${file}`, { cause: error }));
      }
    }
    return batches;
  }

  async remove(spool: SpoolFile): Promise<void> {
    await unlink(spool.file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') this.onError(new Error(`auditledger spool: cannot delete ${spool.file}`, { cause: error }));
    });
  }

  /** Keeps a batch the ledger refused some of for a person to look at; its idempotency keys make re-sending it harmless. */
  async keepRejected(spool: SpoolFile): Promise<void> {
    await rename(spool.file, `${spool.file}${REJECTED_SUFFIX}`).catch((error: unknown) =>
      this.onError(new Error(`auditledger spool: cannot rename ${spool.file}`, { cause: error })),
    );
  }

  private parse(file: string, text: string): { entries: SpooledEntry[]; context: ChainContext | undefined } {
    const entries: SpooledEntry[] = [];
    let context: ChainContext | undefined;
    // Only lines that ended in a newline were written whole.
    for (const json of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
      if (json === '') continue;
      try {
        const line = JSON.parse(json) as QueuedEvent | { context: ChainContext };
        if (!('idempotency_key' in line) && entries.length === 0 && context === undefined) context = line.context;
        else entries.push({ json, key: (line as QueuedEvent).idempotency_key });
      } catch (error) {
        this.onError(new Error(`auditledger spool: skipped a damaged line of ${file}`, { cause: error }));
      }
    }
    return { entries, context };
  }
}
