/**
 * Consul's own rules that the consul backend (`consul.ts`) must follow, each from Consul's
 * documentation or agent source, kept apart so they can be read (and tested) on their own.
 */
import { ExitCode, StackError, UnreachableError } from '../errors.js';
import { errorText } from '../util/error-text.js';
import { pause, realClock, type Clock } from '../util/clock.js';

/**
 * `DeregisterCriticalServiceAfter` below a minute is raised to a minute by the agent
 * (CheckDeregisterIntervalMin), and its reaper only looks every 30 s (CheckReapInterval): a service
 * critical for a TTL is out of `?passing` lookups at once, but stays listed by the agent for one
 * to one and a half minutes. Nothing here waits for the reaping.
 */
export const DEREGISTER_MINIMUM_MS = 60_000;

/** The `DeregisterCriticalServiceAfter` we ask for: the TTL, but never less than Consul's minimum. */
export function deregisterAfterMs(ttlMs: number): number {
  return Math.max(DEREGISTER_MINIMUM_MS, Math.round(ttlMs));
}

/** Limits Consul puts on service meta (agent/structs: metaMaxKeyPairs, metaKeyMaxLength, metaValueMaxLength, metaKeyReservedPrefix). */
export const META_MAX_PAIRS = 64;
export const META_KEY_MAX_CHARS = 128;
/** Go's `len(value)`: bytes of UTF-8, not characters. */
export const META_VALUE_MAX_BYTES = 512;
const META_KEY_FORMAT = /^[A-Za-z0-9_-]+$/;
const META_RESERVED_PREFIX = 'consul-';

/**
 * Every way `meta` (the user's pairs plus the `ours` this backend adds) breaks Consul's limits,
 * all at once; empty when the agent would take it.
 */
export function metaProblems(user: Record<string, string>, ours: readonly string[]): string[] {
  const problems: string[] = [];
  const count = Object.keys(user).length + ours.length;
  if (count > META_MAX_PAIRS) {
    problems.push(`${count} meta pairs, over Consul's ${META_MAX_PAIRS} (${ours.length} of them are added by atproto-stacks: ${ours.join(', ')})`);
  }
  for (const [key, value] of Object.entries(user)) {
    if (key === '') problems.push('an empty meta key');
    else if (!META_KEY_FORMAT.test(key)) problems.push(`meta key '${key}' has characters Consul refuses (letters, digits, '_' and '-' only)`);
    if (key.length > META_KEY_MAX_CHARS) problems.push(`meta key '${key.slice(0, 32)}…' is ${key.length} characters long, over Consul's ${META_KEY_MAX_CHARS}`);
    if (key.startsWith(META_RESERVED_PREFIX)) problems.push(`meta key '${key}' starts with '${META_RESERVED_PREFIX}', which Consul reserves for itself`);
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > META_VALUE_MAX_BYTES) problems.push(`the value of meta key '${key}' is ${bytes} bytes long, over Consul's ${META_VALUE_MAX_BYTES}`);
  }
  return problems;
}

/**
 * The index for the next blocking query, from the one just used and the `X-Consul-Index` just
 * answered (Consul's "Blocking Queries", implementation details): an index that went backwards
 * restarts the loop, and the result is never below 1, since an index of 0 does not block and a
 * misbehaving server or proxy answering 0 would turn the watch into a busy loop.
 */
export function nextBlockingIndex(previous: bigint, header: string | string[] | undefined): bigint {
  const text = (Array.isArray(header) ? header[0] : header)?.trim() ?? '';
  const answered = /^\d+$/.test(text) ? BigInt(text) : 0n;
  if (answered < previous) return 1n; // went backwards: start over (1 blocks only until there is anything)
  return answered < 1n ? 1n : answered;
}

/**
 * A token bucket (burst `burst`, one token per `refillMs`): `take()` resolves at once while tokens
 * last, then paces. Consul's blocking-query guidance: let a couple of quick successive answers
 * through, but never let a watch degrade into a busy loop when answers come back at once.
 */
export function createTokenBucket(burst: number, refillMs: number, clock: Clock = realClock): (signal?: AbortSignal) => Promise<void> {
  let tokens = burst;
  let last = clock.now();
  const refill = () => {
    const now = clock.now();
    tokens = Math.min(burst, tokens + (now - last) / refillMs);
    last = now;
  };
  return async (signal?: AbortSignal) => {
    refill();
    if (tokens < 1) {
      await pause((1 - tokens) * refillMs, signal, clock);
      refill();
    }
    tokens = Math.max(0, tokens - 1);
  };
}

/** The HTTP status of a failed call, if it got an answer. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: number; response?: { statusCode?: number } } | undefined;
  return e?.statusCode ?? e?.response?.statusCode;
}

/** The body of a failed call's answer, as text (papi keeps it on `response.body`). */
export function bodyOf(err: unknown): string {
  const body = (err as { response?: { body?: unknown } } | undefined)?.response?.body;
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  return '';
}

/**
 * The agent does not hold this check: 404 "Unknown check ID" today; older agents answered 500
 * "CheckID … does not have associated TTL" (agent.updateTTLCheck) for a check they never had.
 */
export function isUnknownCheck(err: unknown): boolean {
  const status = statusOf(err);
  if (status === 404) return true;
  return status === 500 && /does not have associated TTL|unknown check/i.test(`${bodyOf(err)} ${errorText(err)}`);
}

export function isStaleSocket(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  return e?.code === 'ECONNRESET' || e?.code === 'EPIPE' || /socket hang up/.test(e?.message ?? '');
}

export function invalid(message: string): StackError {
  return new StackError(message, { code: 'invalid_input', exitCode: ExitCode.invalidInput });
}

/** A failed call as the error the rest of `stack` understands; `where` is the agent's address for messages. */
export function toStackError(err: unknown, what: string, where: string): unknown {
  if (err instanceof StackError) return err;
  const status = statusOf(err);
  const message = errorText(err);
  if (status === 403 || status === 401) {
    // Consul's 403 bodies name the missing right, never the token.
    const detail = bodyOf(err).trim().slice(0, 200);
    return new UnreachableError('consul', `consul at ${where} refused our ACL token (${what}: HTTP ${status}${detail ? `: ${detail}` : ''})`, {
      cause: err,
      code: 'unauthorized',
    });
  }
  if (status === 400) return invalid(`consul (${where}) rejected ${what}: ${bodyOf(err).trim() || message}`);
  if (status === undefined) {
    return new UnreachableError('consul', `consul discovery backend unreachable at ${where} (${what}): ${message}`, { cause: err });
  }
  return new StackError(`consul (${where}) ${what} failed: ${bodyOf(err).trim() || message}`, { code: 'discovery_error', cause: err });
}
