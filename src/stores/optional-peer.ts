import { SessionConfigError } from '../session/session.errors.js';

/**
 * Loads an optional peer dependency (ioredis, pg) only where a store needs it at run time, so that
 * importing the store's entry point never fails, and a missing package says what to install.
 */
export function requirePeer<T>(name: string, neededBy: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional, loaded on first use
    return require(name) as T;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if ((code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && String((error as Error).message).includes(`'${name}'`)) {
      throw new SessionConfigError(`${neededBy} needs the '${name}' package, which is not installed: run \`npm install ${name}\``);
    }
    throw error;
  }
}
