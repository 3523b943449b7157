import type { Logger } from 'pino';
import type { Principal } from './credentials.js';

/** What middleware puts on each request's context for the handlers after it. */
export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    principal: Principal;
    /** The body size limit (AUDITLEDGER_MAX_BODY_BYTES). */
    maxBodyBytes: number;
  };
}
