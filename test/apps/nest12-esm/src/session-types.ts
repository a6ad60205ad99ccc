// The shape of this app's session (nest-sessions' Quick start): a module, so it augments the package.
export {};

declare module 'nest-sessions' {
  interface SessionData {
    visits: number;
  }
}
