import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSigningKey, generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ADMIN = `bad-input-admin-token-${'x'.repeat(20)}`;
const SIGNER = generateSigningKey('bad-input.example/log');
const VKEY = verifierKey(SIGNER);
const SIGNING_KEY = encodeSigningKey(SIGNER);
const CHAIN = '01890a5d-ac96-774b-bcce-b302099a8057/01890a5d-ac96-774b-bcce-b302099a8058';
const ID = '01890a5d-ac96-774b-bcce-b302099a8059';

/** A port nothing listens on: one the system just gave out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Case {
  args: string[];
  env?: Record<string, string>;
  code: number;
  /** What the one line says. */
  message: RegExp;
  /** A verification failure, reported on stdout; otherwise the line is on stderr. */
  stdout?: boolean;
  /** Needs a migrated database (DATABASE_URL) and a data dir of its own: serve and seal get that far. */
  database?: boolean;
  /** Text the output must not hold (a secret). */
  absent?: string;
}

describe('the CLI answers every mistake with one line and a documented exit code', () => {
  let dir: string;
  let db: TestDatabase;
  let unreachable: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-bad-input-'));
    await writeFile(path.join(dir, 'not-json.json'), 'hello\nworld\n');
    await writeFile(path.join(dir, 'proof.json'), '{}');
    await writeFile(path.join(dir, 'leaf-only.json'), '{"leaf_index":0}');
    await writeFile(path.join(dir, 'note-number.json'), '{"leaf_index":0,"checkpoint":5}');
    await writeFile(path.join(dir, 'bad-consistency.json'), '{"from":1,"to":"9","proof":["AA==",3]}');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    await writeFile(path.join(dir, 'rsa.pem'), rsa);
    db = await createTestDatabase();
    unreachable = `postgres://nobody:secret@127.0.0.1:${await closedPort()}/auditledger`;
  });
  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const badName = /--name .*: a key name must be printable, with no spaces and no '\+'/;
  const noDatabase = /cannot use the database at 127\.0\.0\.1:\d+\/auditledger \(DATABASE_URL\): connect ECONNREFUSED/;
  const cases: Case[] = [
    { args: ['keygen', '--name', 'a b'], code: 2, message: badName },
    { args: ['keygen', '--name', 'a+b'], code: 2, message: badName },
    { args: ['keygen', '--name', 'a\nb'], code: 2, message: /--name "a\\nb": a key name must be printable/ },
    { args: ['keygen', '--name', 'a\u202eb'], code: 2, message: badName },
    { args: ['keygen', '--name', 'x'.repeat(300)], code: 2, message: /--name: a key name has at most 251 characters/ },
    { args: ['keygen'], code: 2, message: /--name NAME is required/ },
    { args: ['keygen', '--name'], code: 2, message: /Option '--name <value>' argument missing/ },
    { args: ['keygen', '--name', 'ok', '--bogus'], code: 2, message: /Unknown option '--bogus'/ },
    { args: ['keygen', '--name', 'ok', '--out', '/nonexistent-dir/k'], code: 2, message: /cannot write \/nonexistent-dir\/k: ENOENT/ },
    { args: ['keygen', '--name', 'ok', '--out', ''], code: 2, message: /--out takes a file name/ },
    { args: ['key', 'show', '/nonexistent-dir/k'], code: 2, message: /cannot read \/nonexistent-dir\/k: ENOENT/ },
    { args: ['key', 'show', '--key', 'x'], code: 2, message: /Unknown option '--key'/ },
    { args: ['verify-proof', '/nonexistent-dir/p.json', '--key', VKEY], code: 2, message: /cannot read \/nonexistent-dir\/p\.json: ENOENT/ },
    { args: ['verify-proof', 'proof.json', '--key', 'garbage'], code: 2, message: /--key: verifier key: expected <name>\+<key id>\+<key>/ },
    // A signing key given by mistake is named as such, never printed. (Its key is all after
    // PRIVATE+KEY+<name>+<id>+: base64 may hold '+' itself, so not just the last part.)
    { args: ['verify-proof', 'proof.json', '--key', VKEY, '--key', SIGNING_KEY], code: 2, message: /^auditledger verify-proof: --key \(the 2nd\): verifier key: this is a private signing key; give its vkey/, absent: SIGNING_KEY.split('+').slice(4).join('+') },
    { args: ['verify-proof', 'proof.json'], code: 2, message: /give at least one --key VKEY/ },
    { args: ['verify-proof', 'not-json.json', '--key', VKEY], code: 1, message: /^FAILED: not-json\.json is not JSON$/, stdout: true },
    {
      args: ['verify-proof', 'leaf-only.json', '--key', VKEY],
      code: 1,
      message: /^FAILED: not a valid inclusion proof document: tree_size is missing; leaf_hash is missing; proof is missing; checkpoint is missing$/,
      stdout: true,
    },
    {
      args: ['verify-proof', 'note-number.json', '--key', VKEY],
      code: 1,
      message: /^FAILED: not a valid inclusion proof document: .*checkpoint must be a signed checkpoint note \(a string\) or null, got 5$/,
      stdout: true,
    },
    {
      args: ['verify-proof', 'bad-consistency.json', '--key', VKEY],
      code: 1,
      message: /^FAILED: not a valid consistency proof document: to must be a whole number from 0, got "9"; proof\[1\] must be a base64 string, got 3; checkpoints is missing$/,
      stdout: true,
    },
    { args: ['verify-proof', '--seq', '1', '--id', ID, '--archive', '.', '--chain', CHAIN, '--key', VKEY], code: 2, message: /--archive takes one of --seq N or --id UUID, not both/ },
    { args: ['verify-proof', '--archive', '.', '--key', VKEY, '--chain', CHAIN], code: 2, message: /--archive needs one of --seq N or --id UUID\n/ },
    // One check of --chain for both commands: two ids, never a path.
    ...(['verify-proof', 'verify-archive'] as const).map(
      (verb): Case => ({
        args: verb === 'verify-proof' ? [verb, '--archive', '.', '--chain', '../..', '--seq', '1', '--key', VKEY] : [verb, '.', '--chain', '../..', '--key', VKEY],
        code: 2,
        message: /--chain takes PROJECT\/ENVIRONMENT, their ids \(UUIDs\), got "\.\.\/\.\."/,
      }),
    ),
    { args: ['verify-archive', '.', '--key', VKEY, '--threads', '-1'], code: 2, message: /--threads takes a whole number from 1 to 9999, got "-1"/ },
    { args: ['verify-archive', 's3://bucket/prefix', '--key', VKEY, '--retention-days', '-5'], code: 2, message: /--retention-days takes a whole number of days, got "-5"/ },
    { args: ['verify-archive', '.', '--key', VKEY, '--from', '0000-01-01'], code: 2, message: /--from takes a UTC day YYYY-MM-DD from 0001-01-01 to 9999-12-31, got "0000-01-01"/ },
    { args: ['verify-archive', '.', '--key', VKEY, '--to', '10000-01-01'], code: 2, message: /--to takes a UTC day/ },
    { args: ['verify-archive', '.', '--key', 'garbage'], code: 2, message: /--key: verifier key/ },
    { args: ['verify-archive', '/nonexistent-dir', '--key', VKEY], code: 1, message: /cannot read the archive: \/nonexistent-dir is not a folder/ },
    { args: ['seal', '--through'], code: 2, message: /Option '--through <value>' argument missing/ },
    // Node's recursive mkdir spins for ever under /proc: one line instead.
    { args: ['archive', 'init'], env: { AUDITLEDGER_ARCHIVE: '/proc/auditledger-nope' }, code: 1, message: /ENOENT: no such file or directory, mkdir '\/proc\/auditledger-nope'/ },
    { args: ['seal', '--through', '-1'], code: 2, message: /--through: -1 is not a day/ },
    { args: ['seal', '--through', '2026-02-30'], code: 2, message: /--through: 2026-02-30 is not a day/ },
    { args: ['seal', '--through', '9999-12-31'], code: 2, message: /--through: 9999-12-31 has not ended/ },
    { args: ['verify', '--project', 'p'], code: 2, message: /give --project and --environment together/ },
    { args: ['archive', 'create'], code: 2, message: /the only archive command is 'init'/ },
    { args: ['migrate', 'now'], code: 2, message: /Unexpected argument 'now'/ },
    { args: ['archive', 'init'], env: { AUDITLEDGER_ARCHIVE: 's3://bucket/prefix', S3_ENDPOINT: 's3-closed' }, code: 1, message: /S3 CreateBucket s3:\/\/bucket failed: .*ECONNREFUSED/ },
    { args: ['serve'], env: { AUDITLEDGER_VERIFY_CRON: 'bad cron' }, code: 78, message: /AUDITLEDGER_VERIFY_CRON: "bad cron" is not a cron expression/ },
    { args: ['seal'], env: { AUDITLEDGER_SEAL_CRON: '61 * * * *' }, code: 78, message: /AUDITLEDGER_SEAL_CRON: "61 \* \* \* \*" is not a cron expression/ },
    { args: ['verify'], env: { AUDITLEDGER_RETIRED_KEYS: 'garbage' }, code: 78, message: /AUDITLEDGER_RETIRED_KEYS: key 1: verifier key: expected/ },
    { args: ['serve'], env: { PORT: 'eighty', AUDITLEDGER_LOG_LEVEL: 'loud' }, code: 78, message: /invalid configuration: PORT: .*; AUDITLEDGER_LOG_LEVEL: / },
    ...['migrate', 'seal', 'verify', 'serve'].map((verb): Case => ({ args: [verb], env: { DATABASE_URL: 'unreachable' }, code: 1, message: noDatabase })),
    {
      args: ['migrate'],
      env: { DATABASE_URL: 'missing-database' },
      code: 1,
      message: /cannot use the database at [^ ]+\/auditledger_no_such_db \(DATABASE_URL\): database "auditledger_no_such_db" does not exist/,
    },
    // pg fails the SCRAM exchange itself and used to leave its socket open: serve hung after the line.
    ...['serve', 'migrate'].map(
      (verb): Case => ({
        args: [verb],
        env: { DATABASE_URL: 'no-password' },
        code: 1,
        message: /cannot use the database at [^ ]+ \(DATABASE_URL\): the server asks for a password and none was given/,
      }),
    ),
    {
      args: ['serve'],
      env: { AUDITLEDGER_SIGNING_KEY_FILE: 'rsa.pem' },
      database: true,
      code: 78,
      message: /AUDITLEDGER_SIGNING_KEY_FILE: cannot use the signing key in rsa\.pem: RSA keys are refused: checkpoints are signed with Ed25519/,
      absent: 'PRIVATE KEY',
    },
    { args: ['serve'], env: { HOST: '999.1.1.1' }, database: true, code: 78, message: /HOST: "999\.1\.1\.1" does not resolve to an address/ },
    { args: ['serve'], env: { HOST: '8.8.8.8' }, database: true, code: 78, message: /HOST: "8\.8\.8\.8" is not an address of this machine/ },
    ...['serve', 'seal'].map(
      (verb): Case => ({
        args: [verb],
        env: { AUDITLEDGER_SIGNING_KEY_FILE: '/nonexistent-dir/key' },
        database: true,
        code: 78,
        message: /AUDITLEDGER_SIGNING_KEY_FILE: cannot use the signing key in \/nonexistent-dir\/key: ENOENT/,
      }),
    ),
  ];

  const label = (c: Case) => [...Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`), ...c.args].join(' ').slice(0, 90);
  it.concurrent.each(cases.map((c) => [label(c), c] as const))('%s', async (_, c) => {
    // Never the embedded default: a case that got past its mistake fails fast instead.
    const env: Record<string, string> = { DATABASE_URL: unreachable, ...c.env };
    if (env.S3_ENDPOINT === 's3-closed') Object.assign(env, { S3_ENDPOINT: `http://${new URL(unreachable).host}`, S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' });
    if (env.DATABASE_URL === 'unreachable') env.DATABASE_URL = unreachable;
    if (env.DATABASE_URL === 'no-password') env.DATABASE_URL = Object.assign(new URL(db.ownerUrl), { password: '' }).href;
    if (env.DATABASE_URL === 'missing-database') env.DATABASE_URL = Object.assign(new URL(db.ownerUrl), { pathname: '/auditledger_no_such_db' }).href;
    if (c.database) {
      const data = await mkdtemp(path.join(dir, 'data-'));
      Object.assign(env, { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: data, AUDITLEDGER_ADMIN_TOKEN: ADMIN, PORT: '0' });
    }
    const cli = runCli(c.args, { AUDITLEDGER_LOG_LEVEL: 'error', ...env }, { cwd: dir });
    const { code } = await cli.exited;
    const output = cli.output();
    expect(output, output).not.toMatch(/^\s+at /m);
    if (c.absent) expect(output).not.toContain(c.absent);
    expect(code, output).toBe(c.code);
    if (c.stdout) {
      expect(cli.stderr()).toBe('');
      expect(output).toMatch(/^[^\n]*\n$/);
      expect(output.trimEnd()).toMatch(c.message);
    } else {
      expect(cli.stderr()).toMatch(new RegExp(`^auditledger ${c.args[0]}: [^\\n]*\\n$`));
      expect(cli.stderr()).toMatch(c.message);
    }
  });
});

describe('an unexpected error', () => {
  it('is one line, and its stack follows only with AUDITLEDGER_LOG_LEVEL=debug', async () => {
    const env = { AUDITLEDGER_ARCHIVE: 's3://bucket/prefix', S3_ENDPOINT: `http://127.0.0.1:${await closedPort()}`, S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' };
    const debug = runCli(['archive', 'init'], { ...env, AUDITLEDGER_LOG_LEVEL: 'debug' });
    expect((await debug.exited).code).toBe(1);
    expect(debug.stderr()).toMatch(/^auditledger archive: S3 CreateBucket s3:\/\/bucket failed: [^\n]*\n[^\n]*\n\s+at /);
  });
});

describe('auditledger keygen', () => {
  it('derives a safe default file name in the current folder from any valid key name', async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'auditledger-keygen-'));
    const cwd = path.join(parent, 'work');
    await mkdir(cwd);
    try {
      const names = { 'example.com/log': 'example.com_log.key', '../escaped': '_._escaped.key', '..': '_..key', '--x': '_-x.key', 'café': 'caf_.key' };
      await Promise.all(
        Object.entries(names).map(async ([name, file]) => {
          const cli = runCli(['keygen', '--name', name], {}, { cwd });
          expect((await cli.exited).code, cli.output()).toBe(0);
          expect(cli.stderr()).toBe(`signing key written to ${path.join(cwd, file)} (mode 0600)\n`);
          expect(cli.output()).toContain(`${name}+`);
        }),
      );
      expect((await readdir(cwd)).sort()).toEqual(Object.values(names).sort());
      expect(await readdir(parent)).toEqual(['work']);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
