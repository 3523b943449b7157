/**
 * Prometheus metrics in the text exposition format, without a client library: counters and
 * histograms kept in memory, gauges read at scrape time. Only aggregates are exposed (no tenant
 * ids), so /metrics needs no auth.
 */

class Counter {
  value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(by = 1): void {
    this.value += by;
  }
  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n${this.name} ${this.value}\n`;
  }
}

class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    this.buckets.forEach((le, i) => {
      if (value <= le) this.counts[i]!++;
    });
  }
  render(): string {
    const lines = this.buckets.map((le, i) => `${this.name}_bucket{le="${le}"} ${this.counts[i]}`);
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n${lines.join('\n')}\n`;
  }
}

export function gauge(name: string, help: string, samples: [labels: Record<string, string>, value: number][]): string {
  const lines = samples.map(([labels, value]) => {
    const text = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`);
    return `${name}${text.length ? `{${text.join(',')}}` : ''} ${value}`;
  });
  return `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${lines.join('\n')}\n`;
}

/** What the append path records; the rest is read from the database when scraped. */
export class AppendMetrics {
  readonly events = new Counter('auditledger_appended_events_total', 'Events appended.');
  readonly batches = new Counter('auditledger_append_requests_total', 'Append requests acknowledged.');
  readonly latency = new Histogram('auditledger_append_seconds', 'Time from an append request to its acknowledgement.', [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  ]);
  readonly groupEvents = new Histogram('auditledger_group_commit_events', 'Events per append transaction (group commit size).', [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000,
  ]);
  readonly groupRequests = new Histogram('auditledger_group_commit_requests', 'Requests coalesced per append transaction.', [
    1, 2, 4, 8, 16, 32, 64, 128,
  ]);

  /** GroupCommit's onCommit. */
  readonly recordCommit = (events: number, requests: number): void => {
    this.groupEvents.observe(events);
    this.groupRequests.observe(requests);
  };

  render(): string {
    return [this.events, this.batches, this.latency, this.groupEvents, this.groupRequests].map((m) => m.render()).join('');
  }
}
