/** Names shared by the global setup and the per-file databases. */
export const TEMPLATE_DATABASE = 'auditledger_test_template';
/** A non-superuser owner, so tests see the rights a real deployment's owner has. */
export const TEST_OWNER = { user: 'auditledger_test_owner', password: 'test-owner-password' };

export function withDatabase(url: string, database: string, login?: { user: string; password: string }): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (login) {
    u.username = login.user;
    u.password = login.password;
  }
  return u.toString();
}
