import { Global, Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { SESSION_MODULE_OPTIONS } from '../session/session.constants.js';
import { SessionEngine } from '../lifecycle/session-engine.js';
import { SessionConfigError } from '../session/session.errors.js';
import { SessionInterceptor } from './session.interceptor.js';
import { SessionNamesCheck } from './session-names.check.js';
import type { SessionModuleAsyncOptions, SessionModuleOptions } from './session.options.js';
import { SessionService } from './session.service.js';
import { CsrfProtection } from '../csrf/csrf.protection.js';
import { GatewaySessionBinder } from '../gateways/gateway-binder.js';

/** Sessions for the whole app: import once in the root module; it is global. */
@Global()
@Module({})
export class SessionModule {
  /** `SessionModule.forRoot()` alone works: memory store, `sid` cookie, a random secret with a warning. */
  static forRoot(options: SessionModuleOptions = {}): DynamicModule {
    return build({ provide: SESSION_MODULE_OPTIONS, useValue: options }, options.interceptor, []);
  }

  /** Options from a factory, e.g. with `@nestjs/config`: `forRootAsync({ imports, inject, useFactory })`. */
  static forRootAsync(options: SessionModuleAsyncOptions): DynamicModule {
    const mode = options.interceptor ?? 'route';
    return build(
      {
        provide: SESSION_MODULE_OPTIONS,
        inject: options.inject ?? [],
        useFactory: async (...args: unknown[]) => {
          const resolved = await options.useFactory(...args);
          if (resolved?.interceptor !== undefined && resolved.interceptor !== mode) {
            throw new SessionConfigError(
              `forRootAsync: interceptor '${resolved.interceptor}' came from useFactory; set interceptor beside useFactory, since it decides how routes are bound before the factory runs`,
            );
          }
          // The engine learns the mode from the options, like forRoot's.
          return { ...resolved, interceptor: mode };
        },
      },
      options.interceptor,
      options.imports ?? [],
    );
  }
}

function build(options: Provider, interceptor: 'route' | 'global' | undefined, imports: DynamicModule['imports']): DynamicModule {
  const providers: Provider[] = [options, SessionEngine, SessionService, SessionInterceptor, SessionNamesCheck, CsrfProtection, GatewaySessionBinder];
  if (interceptor === 'global') providers.push({ provide: APP_INTERCEPTOR, useExisting: SessionInterceptor });
  return {
    module: SessionModule,
    global: true,
    imports: [DiscoveryModule, ...(imports ?? [])],
    providers,
    exports: [SessionEngine, SessionService, SessionInterceptor, CsrfProtection],
  };
}
