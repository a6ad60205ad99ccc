import { Injectable, Optional, UseInterceptors, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost, MetadataScanner } from '@nestjs/core';
import { sessionNamesOf } from '../nest/route-info.js';
import { SESSION_CONTEXT_METADATA } from '../session/session.constants.js';
import { loadWsException } from './gateway-errors.js';
import { gatewayMessageInterceptor } from './gateway-message.js';
import { tagUpgrades } from './socket-client.js';

// @nestjs/websockets' metadata keys, read as strings: nothing of that package is imported.
const GATEWAY_METADATA = 'websockets:is_gateway';
const MESSAGE_MAPPING_METADATA = 'websockets:message_mapping';
const kBound = Symbol('nest-sessions:gateway-bound');

/**
 * Finds, as the app is built, the gateway message handlers that ask for a session (`@Session()`,
 * `@Flash()`, `@UseSession()` on the handler or its gateway) and binds an interceptor to them alone:
 * it loads the socket's session before the handler and saves it after (`@UseSession()` binds
 * `SessionInterceptor`, which does the same). Runs before Nest connects the gateways (which read
 * the interceptors once), so it works from the constructor.
 * Gateways and handlers that never ask run no code of ours at their messages; an app without
 * gateways pays nothing.
 */
@Injectable()
export class GatewaySessionBinder implements OnModuleInit {
  /** The app has gateways: `SessionService.load(client)` may be asked in any of them (`handleConnection`). */
  private readonly gateways: boolean;

  constructor(
    discovery: DiscoveryService,
    scanner: MetadataScanner,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {
    let gateways = false;
    let found = false;
    for (const wrapper of discovery.getProviders()) {
      const type = wrapper.metatype as (new (...args: unknown[]) => unknown) | undefined;
      if (typeof type !== 'function' || !Reflect.hasMetadata(GATEWAY_METADATA, type)) continue;
      gateways = true;
      if (bindGateway(type, scanner)) found = true;
    }
    this.gateways = gateways;
    if (found) loadWsException();
  }

  /**
   * The gateways are connected by now: `ws` sockets on the app's HTTP server can read their
   * upgrade's cookie, in a message handler or in `handleConnection`, whatever the handlers ask.
   */
  onModuleInit(): void {
    if (!this.gateways) return;
    const adapter = this.adapterHost?.httpAdapter as { getHttpServer?: () => unknown } | undefined;
    if (typeof adapter?.getHttpServer === 'function') tagUpgrades(adapter.getHttpServer());
  }
}

/** Binds the session interceptor to the message handlers of `gateway` that ask for a session; true if any do. */
function bindGateway(gateway: new (...args: unknown[]) => unknown, scanner: MetadataScanner): boolean {
  const prototype = gateway.prototype as Record<string, unknown>;
  const asksAll = sessionNamesOf(gateway).length > 0;
  const boundAll = Reflect.getMetadata(SESSION_CONTEXT_METADATA, gateway) === true; // @UseSession() bound it already
  let found = false;
  for (const method of scanner.getAllMethodNames(prototype)) {
    const handler = prototype[method];
    if (typeof handler !== 'function' || Reflect.getMetadata(MESSAGE_MAPPING_METADATA, handler) === undefined) continue;
    if (!asksAll && sessionNamesOf(handler).length === 0) continue;
    found = true;
    if (boundAll || Reflect.getMetadata(SESSION_CONTEXT_METADATA, handler) === true || Reflect.getOwnMetadata(kBound, handler) === true) continue;
    Reflect.defineMetadata(kBound, true, handler);
    // An interceptor object, not a class: Nest resolves interceptor classes among the module's
    // injectables, which its scan (already done) collects; an object is used as it is.
    UseInterceptors(gatewayMessageInterceptor)(prototype, method, { value: handler });
  }
  return found;
}
