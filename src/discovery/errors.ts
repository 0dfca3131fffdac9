import { ExitCode, StackError } from '../errors.js';

/**
 * An `exclusive` registration found its id already held by another registration.
 *
 * Every backend throws this one class, so the manager and the engine can tell a collision (two
 * stacks claiming the same instance id) from an unreachable backend without knowing the backend.
 */
export class CollisionError extends StackError {
  readonly service: string;
  readonly id: string;
  constructor(service: string, id: string, opts: { backend?: string; cause?: unknown } = {}) {
    const where = opts.backend ? ` in ${opts.backend} discovery` : '';
    super(`instance '${id}' of service '${service}' is already registered${where}`, {
      code: 'collision',
      exitCode: ExitCode.stackFailed,
      path: `${service}/${id}`,
      cause: opts.cause,
    });
    this.service = service;
    this.id = id;
  }
}

/**
 * A heartbeat for a registration that no longer exists (it expired, or was deregistered).
 * Heartbeats never resurrect a registration: the holder must register again, which is what the
 * manager's `keepAlive` does when it sees this error.
 */
export class NotRegisteredError extends StackError {
  readonly service: string;
  readonly id: string;
  constructor(service: string, id: string, opts: { backend?: string; cause?: unknown } = {}) {
    const where = opts.backend ? ` in ${opts.backend} discovery` : '';
    super(`instance '${id}' of service '${service}' is not registered${where}`, {
      code: 'not_registered',
      exitCode: ExitCode.stackFailed,
      path: `${service}/${id}`,
      cause: opts.cause,
    });
    this.service = service;
    this.id = id;
  }
}
