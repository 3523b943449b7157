// The GraphQL that Retraced's client sends to /publisher/v1/project/:projectId/graphql: a small
// reader for one query operation, checked against Retraced's Event type, and the projection of an
// answer onto the selection asked for.
import { ApiError } from './errors.js';

/** A GraphQL object type as its field names, each with its own type's fields or null for a scalar. */
interface Shape {
  readonly [field: string]: Shape | null;
}

const KEY_VALUE: Shape = { key: null, value: null };
/** Retraced's Event type: what the masks of the client's `query()` select from. */
const EVENT: Shape = {
  id: null,
  action: null,
  description: null,
  crud: null,
  group: { id: null, name: null },
  actor: { id: null, name: null, href: null, fields: KEY_VALUE },
  target: { id: null, name: null, href: null, type: null, fields: KEY_VALUE },
  display: { markdown: null },
  received: null,
  created: null,
  canonical_time: null,
  is_failure: null,
  is_anonymous: null,
  source_ip: null,
  country: null,
  loc_subdiv1: null,
  loc_subdiv2: null,
  component: null,
  version: null,
  external_id: null,
  fields: KEY_VALUE,
  metadata: KEY_VALUE,
};
const QUERY: Shape = {
  search: { totalCount: null, pageInfo: { hasNextPage: null, hasPreviousPage: null }, edges: { cursor: null, node: EVENT } },
};

type ArgumentValue = { variable: string } | string | number | boolean | null;
interface Field {
  args: Map<string, ArgumentValue>;
  selection?: Selection;
}
export type Selection = Map<string, Field>;

const graphqlProblem = (message: string) => new ApiError(400, 'invalid_graphql', message);

const GRAPHQL_TOKEN = /[\s,]+|#[^\n\r]*|"(?:[^"\\\n\r]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z]\w*|\.\.\.|[{}()[\]:!$=@]/y;
const isName = (token: string | undefined) => token !== undefined && /^[_A-Za-z]/.test(token);

/** The tokens of a GraphQL document, without whitespace, commas and comments. */
export function graphqlTokens(source: string): string[] {
  const pattern = new RegExp(GRAPHQL_TOKEN);
  const tokens: string[] = [];
  while (pattern.lastIndex < source.length) {
    const at = pattern.lastIndex;
    const token = pattern.exec(source)?.[0];
    if (token === undefined) throw graphqlProblem(`unexpected ${JSON.stringify(source[at])} at offset ${at}`);
    if (!/^[\s,#]/.test(token)) tokens.push(token);
  }
  return tokens;
}

/**
 * Reads the GraphQL this endpoint answers: one query operation (`query Name($v: T, …) {…}` or a
 * bare `{…}`) selecting fields of QUERY, with arguments on `search` that are variables or literals.
 * Fragments, aliases, directives and variable defaults are refused (400) rather than half
 * understood. Fields are checked against QUERY as they are read, so nesting cannot go deeper.
 */
export class GraphqlReader {
  private at = 0;

  constructor(private readonly tokens: string[]) {}

  operation(): Selection {
    if (this.accept('query')) {
      if (isName(this.tokens[this.at])) this.at++;
      if (this.accept('(')) this.variableDefinitions();
    }
    const selection = this.selectionSet(QUERY, '');
    if (this.at < this.tokens.length) throw graphqlProblem(`unexpected "${this.tokens[this.at]}" after the query`);
    return selection;
  }

  /** Types need no checking: the arguments' values are validated once resolved. */
  private variableDefinitions(): void {
    for (let token = this.next(); token !== ')'; token = this.next()) {
      if (token === '=') throw graphqlProblem('default values of variables are not supported');
    }
  }

  private selectionSet(shape: Shape, path: string): Selection {
    this.expect('{');
    const selection: Selection = new Map();
    do {
      const name = this.name();
      const at = path ? `${path}.${name}` : name;
      const type = Object.hasOwn(shape, name) ? shape[name] : undefined;
      if (type === undefined) throw graphqlProblem(`${at}: no such field`);
      if (selection.has(name)) throw graphqlProblem(`${at}: selected twice`);
      // Only the root field (search) takes arguments.
      const field: Field = { args: path === '' && this.accept('(') ? this.arguments() : new Map() };
      if (type) field.selection = this.selectionSet(type, at);
      selection.set(name, field);
    } while (!this.accept('}'));
    return selection;
  }

  private arguments(): Map<string, ArgumentValue> {
    const args = new Map<string, ArgumentValue>();
    do {
      const name = this.name();
      this.expect(':');
      args.set(name, this.value());
    } while (!this.accept(')'));
    return args;
  }

  private value(): ArgumentValue {
    const token = this.next();
    if (token === '$') return { variable: this.name() };
    if (token === 'null') return null;
    if (token === 'true' || token === 'false') return token === 'true';
    if (/^-?\d/.test(token)) return Number(token);
    if (token.startsWith('"')) {
      try {
        return JSON.parse(token) as string; // GraphQL's string escapes are JSON's
      } catch {
        throw graphqlProblem(`unsupported escape in ${token}`);
      }
    }
    throw graphqlProblem(`unsupported argument value "${token}"`);
  }

  private name(): string {
    const token = this.next();
    if (!isName(token)) throw graphqlProblem(`expected a name, found "${token}"`);
    return token;
  }

  private next(): string {
    const token = this.tokens[this.at++];
    if (token === undefined) throw graphqlProblem('the query ends too early');
    return token;
  }

  private accept(token: string): boolean {
    if (this.tokens[this.at] !== token) return false;
    this.at++;
    return true;
  }

  private expect(token: string): void {
    const found = this.next();
    if (found !== token) throw graphqlProblem(`expected "${token}", found "${found}"`);
  }
}

export function argumentValues(args: Map<string, ArgumentValue>, variables: Record<string, unknown>): Record<string, unknown> {
  const resolve = (value: ArgumentValue) =>
    value !== null && typeof value === 'object' ? (Object.hasOwn(variables, value.variable) ? variables[value.variable] : null) : value;
  return Object.fromEntries([...args].map(([name, value]) => [name, resolve(value)]));
}

/** The parts of `data` a selection asks for (lists item by item); what is absent is null. */
export function project(data: unknown, selection: Selection): unknown {
  if (Array.isArray(data)) return data.map((item) => project(item, selection));
  if (data === null || data === undefined) return null;
  const record = data as Record<string, unknown>;
  return Object.fromEntries(
    [...selection].map(([name, field]) => [name, field.selection ? project(record[name], field.selection) : (record[name] ?? null)]),
  );
}

