import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { sessionNamesOf } from './route-info.js';
import { SessionEngine } from '../lifecycle/session-engine.js';
import { SessionConfigError } from '../session/session.errors.js';

/** At startup, every session name a decorator asks for (`@Session('prefs')`) must be configured. */
@Injectable()
export class SessionNamesCheck implements OnModuleInit {
  constructor(
    private readonly engine: SessionEngine,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
      const type = wrapper.metatype as (new (...args: unknown[]) => unknown) | undefined;
      if (typeof type !== 'function' || typeof type.prototype !== 'object' || type.prototype === null) continue;
      this.check(sessionNamesOf(type), type.name);
      const prototype = type.prototype as Record<string, unknown>;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[method];
        if (typeof handler === 'function') this.check(sessionNamesOf(handler), `${type.name}.${method}`);
      }
    }
  }

  private check(names: readonly string[], where: string): void {
    for (const name of names) {
      if (!this.engine.definitions.has(name)) {
        const known = [...this.engine.definitions.keys()].map((each) => `'${each}'`).join(', ');
        throw new SessionConfigError(
          `${where} asks for the session '${name}', which is not configured (configured: ${known}); add sessions: { ${name}: { ... } } to SessionModule.forRoot(), or fix the name`,
        );
      }
    }
  }
}
