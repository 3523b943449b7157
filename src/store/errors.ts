/** A write that contradicts what is stored (a duplicate name, a chain that holds events). */
export class ConflictError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ConflictError';
  }
}

const UNIQUE_VIOLATION = '23505';

/** Runs `write`, turning a unique-constraint violation into a ConflictError about `field`. */
export async function uniquely<T>(field: string, message: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw new ConflictError(message, field);
    throw error;
  }
}
