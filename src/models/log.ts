// The logging surface the inference core needs: a pino logger satisfies it, and so does the
// proxy the inference thread uses to forward its lines to the caller's logger.
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A log that drops every line: for benchmarks and tests that print their own figures. */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };
