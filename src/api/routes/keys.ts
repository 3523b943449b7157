import { Hono } from 'hono';
import { keyIdHex, verifierKey, type VerifierKey } from '../../ledger/keys.js';
import type { Keyring } from '../../signing-key.js';
import type { AppEnv } from '../context.js';

/** The public keys that verify our checkpoints and bundles, current and retired. No auth. */
export function keyRoutes(keyring: Keyring) {
  const describe = (key: VerifierKey, status: 'current' | 'retired') => ({
    name: key.name,
    key_id: keyIdHex(key.keyId),
    vkey: verifierKey(key),
    status,
  });
  const body = {
    origin: keyring.origin,
    keys: [describe(keyring.current, 'current'), ...keyring.retired.map((k) => describe(k, 'retired'))],
  };
  return new Hono<AppEnv>().get('/keys', (c) => c.json(body));
}
