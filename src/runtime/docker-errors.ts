/**
 * Reading dockerode's errors: HTTP status from the engine, or a failed connection to it.
 * A failed connection is infrastructure (UnreachableError, exit 3); anything the engine answers
 * with is a failure of the stack (StackFailedError, exit 1).
 */
import { StackError, StackFailedError, UnreachableError } from '../errors.js';

interface DockerodeError {
  statusCode?: number;
  json?: { message?: string } | null;
  reason?: string;
  code?: string;
  message?: string;
}

/** Socket-level failures: the engine is not there (or went away). */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

export function statusOf(err: unknown): number | undefined {
  return (err as DockerodeError | null)?.statusCode;
}

export function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}

export function isConnectionError(err: unknown): boolean {
  const e = err as DockerodeError | null;
  return statusOf(err) === undefined && typeof e?.code === 'string' && CONNECTION_ERRORS.has(e.code);
}

/** The engine's own message ("No such image: …") rather than dockerode's "(HTTP code 404) …" wrapper. */
export function dockerErrorMessage(err: unknown): string {
  const e = err as DockerodeError | null;
  const fromEngine = e?.json?.message;
  if (typeof fromEngine === 'string' && fromEngine) return fromEngine.trim();
  // dockerode's own wrapper: "(HTTP code 500) server error - <the engine's message>".
  if (err instanceof Error) return err.message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
  return String(err);
}

/** Wrap an error from the engine with what we were doing, and the right class. */
export function engineError(err: unknown, doing: string, endpointUrl: string): Error {
  // Already ours, or an abort the caller asked for: pass through unchanged.
  if (err instanceof StackError || (err instanceof Error && err.name === 'AbortError')) return err;
  if (isConnectionError(err)) {
    return new UnreachableError('docker', `Docker engine at ${endpointUrl} is not reachable (${doing}): ${dockerErrorMessage(err)}`, { cause: err });
  }
  return new StackFailedError(`${doing}: ${dockerErrorMessage(err)}`, { code: 'docker_error', cause: err });
}
