import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, loadConfig } from '../src/config.js';
import { encodeSigningKey, generateSigningKey, verifierKey } from '../src/ledger/keys.js';

describe('configuration', () => {
  it('has defaults for everything but the optional URLs and token', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ HOST: '127.0.0.1', PORT: 8080, AUDITLEDGER_LOG_LEVEL: 'info' });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.AUDITLEDGER_ADMIN_TOKEN).toBeUndefined();
    expect(config.AUDITLEDGER_DATA_DIR).toBe(`${process.cwd()}/.auditledger`);
  });

  it('takes an archive folder or s3://bucket[/prefix]', () => {
    expect(loadConfig({ AUDITLEDGER_ARCHIVE: 'archive/here' }).AUDITLEDGER_ARCHIVE).toBe('archive/here');
    expect(loadConfig({ AUDITLEDGER_ARCHIVE: 's3://audit-archive/ledger' }).AUDITLEDGER_ARCHIVE).toBe('s3://audit-archive/ledger');
  });

  it('treats an empty variable as unset, whatever its type', () => {
    expect(loadConfig({ DATABASE_URL: '' }).DATABASE_URL).toBeUndefined();
    const config = loadConfig({ AUDITLEDGER_GROUP_COMMIT_WAIT_MS: '', AUDITLEDGER_GROUP_COMMIT_ACROSS_CHAINS: '', AUDITLEDGER_LOG_LEVEL: '', AUDITLEDGER_DB_POOL_SIZE: '' });
    const defaults = loadConfig({});
    for (const key of ['AUDITLEDGER_GROUP_COMMIT_WAIT_MS', 'AUDITLEDGER_GROUP_COMMIT_ACROSS_CHAINS', 'AUDITLEDGER_LOG_LEVEL', 'AUDITLEDGER_DB_POOL_SIZE'] as const) {
      expect(config[key], key).toEqual(defaults[key]);
    }
  });

  it.each([
    ['PORT', 'eighty', /PORT: .*expects port the HTTP server listens on/],
    ['PORT', '70000', /PORT: /],
    ['AUDITLEDGER_ADMIN_TOKEN', 'short', /AUDITLEDGER_ADMIN_TOKEN: must be at least 32 characters/],
    ['AUDITLEDGER_LOG_LEVEL', 'loud', /AUDITLEDGER_LOG_LEVEL: /],
    ['AUDITLEDGER_MAX_BODY_BYTES', '-1', /AUDITLEDGER_MAX_BODY_BYTES: /],
    ['DATABASE_URL', 'notaurl', /DATABASE_URL: must be a URL postgres:\/\/user:password@host:port\/database/],
    ['AUDITLEDGER_APP_DATABASE_URL', 'mysql://u:p@h/db', /AUDITLEDGER_APP_DATABASE_URL: must be a URL postgres:/],
    // Longer than a Node timer can wait: it would fire at once (a shutdown "timed out" at start).
    ['AUDITLEDGER_SHUTDOWN_TIMEOUT', '1e9', /AUDITLEDGER_SHUTDOWN_TIMEOUT: must be at most 2147483 seconds/],
    ['AUDITLEDGER_DB_UNREACHABLE_SECONDS', '2147484', /AUDITLEDGER_DB_UNREACHABLE_SECONDS: must be at most/],
    ['AUDITLEDGER_CHECKPOINT_INTERVAL', '99999999', /AUDITLEDGER_CHECKPOINT_INTERVAL: must be at most/],
    ['AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS', '3000000', /AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS: must be at most/],
    // A URL that is not s3:// is a mistake, never a folder named "ftp:".
    ['AUDITLEDGER_ARCHIVE', 'ftp://x', /AUDITLEDGER_ARCHIVE: invalid archive URL "ftp:\/\/x": expected s3:\/\/bucket/],
    ['AUDITLEDGER_ARCHIVE', 'S3://audit-archive/x', /AUDITLEDGER_ARCHIVE: invalid archive URL/],
    ['AUDITLEDGER_ARCHIVE', 's3:/audit-archive/x', /AUDITLEDGER_ARCHIVE: invalid archive URL/],
    ['AUDITLEDGER_ARCHIVE', 's3://', /AUDITLEDGER_ARCHIVE: invalid archive URL/],
  ])('names %s when its value %j is invalid', (variable, value, message) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(message);
  });

  it('checks cron expressions as pg-boss parses them, naming the variable', () => {
    expect(loadConfig({ AUDITLEDGER_SEAL_CRON: '5 4 * * sun', AUDITLEDGER_VERIFY_CRON: '*/5 * * * *' }).AUDITLEDGER_SEAL_CRON).toBe('5 4 * * sun');
    // Every *_CRON variable, those added later too.
    const crons = Object.keys(configSchema.shape).filter((variable) => variable.endsWith('_CRON'));
    expect(crons).toEqual(expect.arrayContaining(['AUDITLEDGER_SEAL_CRON', 'AUDITLEDGER_VERIFY_CRON']));
    for (const variable of crons) {
      for (const value of ['bad cron', '61 * * * *', '* * * 13 *']) {
        expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`${variable}: ".*" is not a cron expression`));
      }
    }
  });

  it('parses AUDITLEDGER_RETIRED_KEYS, naming the one that is not a verifier key', () => {
    const vkey = verifierKey(generateSigningKey('retired.example/log'));
    expect(loadConfig({ AUDITLEDGER_RETIRED_KEYS: ` ${vkey}, ` }).AUDITLEDGER_RETIRED_KEYS.map(verifierKey)).toEqual([vkey]);
    expect(() => loadConfig({ AUDITLEDGER_RETIRED_KEYS: `${vkey},garbage` })).toThrow(/AUDITLEDGER_RETIRED_KEYS: key 2: verifier key: /);
    // A signing key put there by mistake is named as such, and its seed never repeated.
    const signing = encodeSigningKey(generateSigningKey('retired.example/log'));
    expect(() => loadConfig({ AUDITLEDGER_RETIRED_KEYS: signing })).toThrow(/AUDITLEDGER_RETIRED_KEYS: key 1: verifier key: this is a private signing key/);
    expect(() => loadConfig({ AUDITLEDGER_RETIRED_KEYS: signing })).not.toThrow(signing.split('+').slice(4).join('+'));
  });

  it('reports every invalid variable at once', () => {
    try {
      loadConfig({ PORT: 'x', AUDITLEDGER_LOG_LEVEL: 'y' });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'AUDITLEDGER_LOG_LEVEL']);
      expect((error as ConfigError).message).toMatch(/^invalid configuration: PORT: [^\n]*; AUDITLEDGER_LOG_LEVEL: [^\n]*$/);
    }
  });

  it('refuses a clock offset unless it is explicitly allowed', () => {
    expect(() => loadConfig({ AUDITLEDGER_CLOCK_OFFSET: '-2d' })).toThrow(/AUDITLEDGER_CLOCK_OFFSET: refused/);
    const allowed = loadConfig({ AUDITLEDGER_CLOCK_OFFSET: '-2d', AUDITLEDGER_ALLOW_CLOCK_OFFSET: 'true' });
    expect(allowed.AUDITLEDGER_CLOCK_OFFSET).toBe(-2 * 86_400_000);
    expect(loadConfig({ AUDITLEDGER_CLOCK_OFFSET: '90m', AUDITLEDGER_ALLOW_CLOCK_OFFSET: 'true' }).AUDITLEDGER_CLOCK_OFFSET).toBe(5_400_000);
    expect(() => loadConfig({ AUDITLEDGER_CLOCK_OFFSET: 'soon', AUDITLEDGER_ALLOW_CLOCK_OFFSET: 'true' })).toThrow(
      /AUDITLEDGER_CLOCK_OFFSET: must be a duration/,
    );
  });
});
