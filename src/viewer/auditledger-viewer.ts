// <auditledger-viewer token="alv_…" url="https://ledger.example" vkey="…">: the embeddable log
// viewer. It lists a group's events (newest first, paged), searches them, shows one event's decoded
// fields and exact canonical bytes, exports the search as CSV, and verifies an event in the page
// (signed checkpoint, leaf hash, inclusion proof) with the ledger's own code (./verify.ts).
// Bundled into one ES module by scripts/build-viewer.mjs; see README "Embedding the viewer".
import { css, html, LitElement, nothing } from 'lit';
import type { InclusionDocument } from '../ledger/verify-proof.js';
import { parseKeys, verifyShownEvent, type VerifyOutcome } from './verify.js';

/** An event as GET /v1/events answers it. */
interface ShownEvent {
  seq: number;
  id: string;
  received_at: string;
  hash: string;
  prev: string;
  canonical: string;
  event: Record<string, unknown> | null;
}

/** The search the form holds, as GET /v1/events query parameters (empty ones left out). */
interface Search {
  action: string;
  actor_id: string;
  target_id: string;
  from: string;
  to: string;
}

type Verdict = { state: 'checking' } | ({ state: 'done' } & VerifyOutcome);

const PAGE_SIZE = 20;
const EMPTY_SEARCH: Search = { action: '', actor_id: '', target_id: '', from: '', to: '' };

/** A refusal the viewer shows as it is (the server's message, or its own). */
class ViewerError extends Error {}

/** The expiry (ms since the epoch) a viewer token claims; undefined when it cannot be read. */
function tokenExpiry(token: string): number | undefined {
  const payload = /^alv_([A-Za-z0-9_-]+)\./.exec(token)?.[1];
  if (!payload) return undefined;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** An event's decoded fields as label/value rows: nested objects flattened to dotted paths. */
function fieldRows(value: unknown, prefix = ''): [string, string][] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [[prefix, typeof value === 'string' ? value : JSON.stringify(value)]];
  }
  return Object.entries(value).flatMap(([key, inner]) => fieldRows(inner, prefix ? `${prefix}.${key}` : key));
}

const text = (value: unknown) => (typeof value === 'string' ? value : '');
const idOf = (party: unknown) => (party && typeof party === 'object' ? text((party as { id?: unknown }).id) : '');
const nameOf = (party: unknown) => (party && typeof party === 'object' ? text((party as { name?: unknown }).name) || idOf(party) : '');

export class AuditledgerViewer extends LitElement {
  static override properties = {
    token: { type: String },
    url: { type: String },
    vkey: { type: String },
    events: { state: true },
    page: { state: true },
    nextCursor: { state: true },
    selected: { state: true },
    verdicts: { state: true },
    error: { state: true },
    loading: { state: true },
  };

  declare token: string;
  declare url: string;
  declare vkey: string;
  declare events: ShownEvent[];
  declare page: number;
  declare nextCursor: string | null;
  declare selected: ShownEvent | undefined;
  declare verdicts: ReadonlyMap<string, Verdict>;
  declare error: string | undefined;
  declare loading: boolean;

  /** The cursor each page was read from (undefined for the first): how Previous goes back. */
  private cursors: (string | undefined)[] = [undefined];
  private search: Search = EMPTY_SEARCH;

  constructor() {
    super();
    this.token = '';
    this.url = '';
    this.vkey = '';
    this.events = [];
    this.page = 0;
    this.nextCursor = null;
    this.selected = undefined;
    this.verdicts = new Map();
    this.error = undefined;
    this.loading = false;
  }

  override updated(changed: Map<string, unknown>): void {
    if ((changed.has('token') || changed.has('url')) && this.url) void this.load(0, undefined);
  }

  // ---- Talking to the ledger ----

  /** GET `path` from the ledger with the viewer token; throws ViewerError with a message for people. */
  private async request(path: string): Promise<Response> {
    // Only a viewer token is ever sent from a page: an API token there would read every group of
    // the chain, and write to it, from every visitor's browser.
    if (!this.token) throw new ViewerError('No viewer token: set the token attribute to an alv_… token your server minted for this user.');
    if (!this.token.startsWith('alv_')) {
      throw new ViewerError('This is not a viewer token: the viewer takes only alv_… tokens, which read one group. Never put an API token (alt_…) in a web page.');
    }
    const expiry = tokenExpiry(this.token);
    if (expiry !== undefined && expiry <= Date.now()) {
      throw new ViewerError(`This viewer token expired at ${new Date(expiry).toISOString()}. Reload the page for a new one.`);
    }
    let response: Response;
    try {
      response = await fetch(new URL(path, this.url), { headers: { authorization: `Bearer ${this.token}` } });
    } catch {
      throw new ViewerError(`The ledger at ${this.url} could not be reached.`);
    }
    if (response.status === 401) throw new ViewerError('The ledger refused this viewer token: it is unknown, expired or revoked. Reload the page for a new one.');
    if (!response.ok) {
      const body = (await response.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
      throw new ViewerError(body?.error?.message ?? `The ledger answered ${response.status}.`);
    }
    return response;
  }

  private query(extra: Record<string, string>): string {
    const params = new URLSearchParams(extra);
    for (const [name, value] of Object.entries(this.search)) {
      if (!value) continue;
      // datetime-local inputs hold local time; the API takes RFC 3339.
      params.set(name, name === 'from' || name === 'to' ? new Date(value).toISOString() : value);
    }
    return params.toString();
  }

  /** Reads page `page` (0-based) of the search, starting after `cursor`. */
  private async load(page: number, cursor: string | undefined): Promise<void> {
    this.loading = true;
    this.error = undefined;
    try {
      const extra: Record<string, string> = { order: 'desc', limit: String(PAGE_SIZE) };
      if (cursor) extra.cursor = cursor;
      const body = (await (await this.request(`/v1/events?${this.query(extra)}`)).json()) as { events: ShownEvent[]; next_cursor: string | null };
      this.events = body.events;
      this.nextCursor = body.next_cursor;
      this.page = page;
      this.cursors[page] = cursor;
      this.cursors.length = page + 1;
    } catch (error) {
      this.events = [];
      this.nextCursor = null;
      this.error = error instanceof Error ? error.message : String(error);
    } finally {
      this.loading = false;
    }
  }

  private onSearch(e: SubmitEvent): void {
    e.preventDefault();
    const form = new FormData(e.target as HTMLFormElement);
    this.search = Object.fromEntries(Object.keys(EMPTY_SEARCH).map((name) => [name, String(form.get(name) ?? '').trim()])) as unknown as Search;
    this.selected = undefined;
    void this.load(0, undefined);
  }

  private onClear(): void {
    this.renderRoot.querySelector('form')?.reset();
    this.search = EMPTY_SEARCH;
    this.selected = undefined;
    void this.load(0, undefined);
  }

  /** Downloads the current search as CSV (GET /v1/events/export?format=csv), oldest first. */
  private async exportCsv(): Promise<void> {
    try {
      const blob = await (await this.request(`/v1/events/export?${this.query({ format: 'csv' })}`)).blob();
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = 'audit-events.csv';
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (error) {
      this.error = error instanceof Error ? error.message : String(error);
    }
  }

  /** The keys checkpoints must be signed by: the pinned ones, else those GET /v1/keys publishes. */
  private async verifierKeys(): Promise<{ keys: ReturnType<typeof parseKeys>; source: string }> {
    if (this.vkey.trim()) return { keys: parseKeys(this.vkey), source: 'the pinned key' };
    const body = (await (await this.request('/v1/keys')).json()) as { keys: { vkey: string }[] };
    return { keys: parseKeys(body.keys.map((k) => k.vkey).join(' ')), source: "the ledger's published key" };
  }

  private async verify(event: ShownEvent): Promise<void> {
    this.setVerdict(event.id, { state: 'checking' });
    let outcome: VerifyOutcome;
    try {
      const { keys, source } = await this.verifierKeys();
      const proof = (await (await this.request(`/v1/events/${encodeURIComponent(event.id)}/proof`)).json()) as InclusionDocument;
      outcome = verifyShownEvent(proof, event.canonical, keys);
      if (outcome.ok) outcome = { ok: true, message: `${outcome.message}, signed by ${source}` };
    } catch (error) {
      outcome = { ok: false, message: error instanceof Error ? error.message : String(error) };
    }
    this.setVerdict(event.id, { state: 'done', ...outcome });
  }

  private setVerdict(id: string, verdict: Verdict): void {
    this.verdicts = new Map(this.verdicts).set(id, verdict);
  }

  private async show(event: ShownEvent): Promise<void> {
    this.selected = event;
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>('.detail h3')?.focus();
  }

  // ---- Rendering ----

  private verdict(id: string) {
    const verdict = this.verdicts.get(id);
    if (!verdict) return nothing;
    if (verdict.state === 'checking') return html`<span class="verdict">Checking…</span>`;
    return verdict.ok
      ? html`<span class="verdict pass" title=${verdict.message}>✓ Verified</span>`
      : html`<span class="verdict fail">✗ Failed: ${verdict.message}</span>`;
  }

  private row(event: ShownEvent) {
    const e = event.event ?? {};
    return html`<tr class=${this.selected?.id === event.id ? 'selected' : ''}>
      <td data-label="Time"><time datetime=${event.received_at}>${event.received_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time></td>
      <td data-label="Action"><code>${text(e.action)}</code></td>
      <td data-label="Actor">${nameOf(e.actor)}</td>
      <td data-label="Target">${nameOf(e.target)}</td>
      <td data-label="" class="actions">
        <button type="button" @click=${() => this.show(event)} aria-label=${`Details of event ${event.seq}`}>Details</button>
        <button type="button" @click=${() => this.verify(event)} aria-label=${`Verify event ${event.seq}`}>Verify</button>
        <span aria-live="polite">${this.verdict(event.id)}</span>
      </td>
    </tr>`;
  }

  private detail(event: ShownEvent) {
    return html`<section class="detail" aria-labelledby="detail-title">
      <div class="detail-head">
        <h3 id="detail-title" tabindex="-1">Event ${event.seq}</h3>
        <button type="button" @click=${() => (this.selected = undefined)}>Close</button>
      </div>
      <dl>
        ${fieldRows({ id: event.id, seq: event.seq, received_at: event.received_at, ...(event.event ?? {}) }).map(
          ([name, value]) => html`<div><dt>${name}</dt><dd>${value}</dd></div>`,
        )}
        <div><dt>hash</dt><dd><code>${event.hash}</code></dd></div>
        <div><dt>prev</dt><dd><code>${event.prev}</code></dd></div>
      </dl>
      <h4>Canonical bytes (what was hashed and signed)</h4>
      <pre class="canonical" tabindex="0" aria-label="Canonical bytes">${event.canonical}</pre>
      <button type="button" @click=${() => this.verify(event)}>Verify</button>
      <span aria-live="polite">${this.verdict(event.id)}</span>
    </section>`;
  }

  override render() {
    const s = this.search;
    return html`<section class="viewer" aria-label="Audit log">
      <form class="search" @submit=${this.onSearch} role="search">
        <label>Action <input name="action" .value=${s.action} placeholder="user.* or user.login" /></label>
        <label>Actor <input name="actor_id" .value=${s.actor_id} placeholder="actor id" /></label>
        <label>Target <input name="target_id" .value=${s.target_id} placeholder="target id" /></label>
        <label>From <input name="from" type="datetime-local" step="1" .value=${s.from} /></label>
        <label>To <input name="to" type="datetime-local" step="1" .value=${s.to} /></label>
        <div class="buttons">
          <button type="submit" class="primary">Search</button>
          <button type="button" @click=${this.onClear}>Clear</button>
          <button type="button" @click=${this.exportCsv}>Export CSV</button>
        </div>
      </form>
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
      <p class="status" role="status">
        ${this.loading ? 'Loading…' : this.error ? '' : `Page ${this.page + 1}: ${this.events.length} event${this.events.length === 1 ? '' : 's'}, newest first`}
      </p>
      <div class="table">
        <table>
          <caption>Audit events, newest first</caption>
          <thead>
            <tr><th scope="col" class="time">Time (UTC)</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">Target</th><th scope="col" class="actions"><span class="hidden">Actions</span></th></tr>
          </thead>
          <tbody>
            ${this.events.map((event) => this.row(event))}
          </tbody>
        </table>
      </div>
      <nav class="pages" aria-label="Pages">
        <button type="button" ?disabled=${this.page === 0 || this.loading} @click=${() => this.load(this.page - 1, this.cursors[this.page - 1])}>Previous</button>
        <span>Page ${this.page + 1}</span>
        <button type="button" ?disabled=${!this.nextCursor || this.loading} @click=${() => this.load(this.page + 1, this.nextCursor ?? undefined)}>Next</button>
      </nav>
      ${this.selected ? this.detail(this.selected) : nothing}
    </section>`;
  }

  static override styles = css`
    :host {
      display: block;
      container-type: inline-size;
      font: var(--alv-font, 14px/1.45 system-ui, sans-serif);
      color: var(--alv-color, #1b1f24);
      background: var(--alv-background, #ffffff);
      --_border: var(--alv-border-color, #c9ced6);
      --_accent: var(--alv-accent, #0b5cad);
      --_muted: var(--alv-muted, #505a66);
      --_radius: var(--alv-radius, 6px);
    }
    .viewer { padding: var(--alv-padding, 12px); }
    form.search { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: end; }
    label { display: flex; flex-direction: column; font-size: 0.85em; color: var(--_muted); gap: 2px; }
    input {
      font: inherit; color: inherit; background: var(--alv-input-background, #fff);
      border: 1px solid var(--_border); border-radius: var(--_radius); padding: 6px 8px; min-width: 10em;
    }
    .buttons { display: flex; gap: 8px; flex-wrap: wrap; }
    button {
      font: inherit; cursor: pointer; border-radius: var(--_radius); padding: 6px 12px; min-height: 32px;
      border: 1px solid var(--_accent); background: transparent; color: var(--_accent);
    }
    button.primary { background: var(--_accent); color: var(--alv-accent-contrast, #fff); }
    button:disabled { opacity: 0.5; cursor: default; }
    :focus-visible { outline: 3px solid var(--alv-focus, #f5a623); outline-offset: 2px; }
    .error { color: var(--alv-fail, #b3261e); font-weight: 600; }
    .status { color: var(--_muted); margin: 8px 0; }
    .table { overflow-x: auto; }
    /* Fixed layout: a long action or name wraps in its column instead of squeezing the time or
       pushing Verify off the edge (fields may hold thousands of characters). */
    table { width: 100%; border-collapse: collapse; table-layout: fixed; }
    th.time { width: 11.5em; }
    th.actions { width: 12em; }
    caption, .hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
    th { text-align: left; font-weight: 600; border-bottom: 2px solid var(--_border); padding: 6px 8px; }
    td { border-bottom: 1px solid var(--_border); padding: 6px 8px; vertical-align: top; overflow-wrap: anywhere; }
    tr.selected td { background: var(--alv-selected-background, #eef4fb); }
    td.actions { white-space: nowrap; }
    .verdict { display: inline-block; margin-left: 6px; white-space: normal; }
    .pass { color: var(--alv-pass, #1e7b34); font-weight: 600; }
    .fail { color: var(--alv-fail, #b3261e); font-weight: 600; }
    .pages { display: flex; gap: 12px; align-items: center; margin: 10px 0; }
    .detail { border: 1px solid var(--_border); border-radius: var(--_radius); padding: 12px; margin-top: 12px; }
    .detail-head { display: flex; justify-content: space-between; align-items: center; }
    h3 { margin: 0; font-size: 1.1em; }
    h4 { margin: 12px 0 4px; font-size: 1em; }
    dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0; }
    dl > div { display: contents; }
    dt { color: var(--_muted); }
    dd { margin: 0; overflow-wrap: anywhere; }
    pre.canonical {
      white-space: pre-wrap; overflow-wrap: anywhere; background: var(--alv-code-background, #f4f6f8);
      border-radius: var(--_radius); padding: 8px; font: var(--alv-code-font, 12px/1.4 ui-monospace, monospace);
    }
    /* Phones: each event a card, labelled cell by cell. */
    @container (max-width: 640px) {
      thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); }
      table, tbody, tr, td { display: block; }
      tr { border: 1px solid var(--_border); border-radius: var(--_radius); margin-bottom: 8px; padding: 4px 0; }
      td { border: none; padding: 2px 10px; }
      td[data-label]:not([data-label=''])::before { content: attr(data-label) ': '; color: var(--_muted); }
      td.actions { white-space: normal; padding-top: 6px; }
      input { min-width: 0; width: 100%; box-sizing: border-box; }
      label { flex: 1 1 100%; }
      dl { grid-template-columns: 1fr; }
    }
  `;
}

if (!customElements.get('auditledger-viewer')) customElements.define('auditledger-viewer', AuditledgerViewer);
