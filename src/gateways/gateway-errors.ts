import { CLIENT_STORE_MESSAGE, SessionStoreError } from '../session/session.errors.js';

type WsExceptionClass = new (error: string | object) => Error;

let wsException: WsExceptionClass | undefined;
let requested = false;

/**
 * Loads `WsException` from `@nestjs/websockets`, once, where the app has gateways (and so that
 * package): the only error Nest's gateway exception filter sends to the client as it is. Never
 * imported statically: the package stays optional.
 */
export function loadWsException(): void {
  if (requested) return;
  requested = true;
  const name = '@nestjs/websockets';
  import(name).then(
    (module: { WsException?: WsExceptionClass; default?: { WsException?: WsExceptionClass } }) => {
      wsException = module.WsException ?? module.default?.WsException;
    },
    () => undefined,
  );
}

/**
 * The error a gateway's client gets for a failure of ours: a store that failed becomes a
 * `WsException` whose payload names it (`{ status: 'error', code: 'SESSION_STORE_UNAVAILABLE',
 * message: 'Session store unavailable' }`, the `exception` event of Nest's filter), keeping the
 * `SessionStoreError` as its cause; anything else goes on as it is.
 */
export function forGatewayClient(error: unknown): unknown {
  if (!(error instanceof SessionStoreError) || wsException === undefined) return error;
  const converted = new wsException({ status: 'error', code: error.extensions.code, message: CLIENT_STORE_MESSAGE });
  (converted as { cause?: unknown }).cause = error;
  return converted;
}
