/**
 * Durations in profiles: a number is seconds; a string takes a unit (`500ms`, `30s`, `2m`, `1h`,
 * also compound `1m30s`), like Compose and Nomad.
 */
export const DURATION_PATTERN = '^(\\d+(\\.\\d+)?(ms|s|m|h))+$';
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The longest duration a Node timer honours (2^31 - 1 ms, about 24.8 days): a longer setTimeout
 * fires after 1 ms instead, so a longer wait or interval cannot be honoured and is refused.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Milliseconds, or undefined when the value is not a valid non-negative duration that a timer can honour. */
export function parseDuration(value: number | string): number | undefined {
  const ms = durationMs(value);
  return ms !== undefined && ms <= MAX_DURATION_MS ? ms : undefined;
}

function durationMs(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!new RegExp(DURATION_PATTERN).test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(PART)) total += Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  return Math.round(total);
}

/**
 * Why a duration cannot be honoured, or undefined if it can. `positive`: zero is refused too
 * (an interval of 0 is a busy loop; a timeout of 0 ends every wait at once).
 */
export function durationProblem(value: unknown, opts: { positive?: boolean } = {}): string | undefined {
  if (typeof value !== 'number' && typeof value !== 'string') return undefined; // the schema reports the type
  if (typeof value === 'number' && !Number.isFinite(value)) return undefined; // reported as an unusable number
  const ms = durationMs(value);
  if (ms === undefined) return undefined; // the schema reports the format
  if (ms > MAX_DURATION_MS) return `${JSON.stringify(value)} is longer than ${MAX_DURATION_MS} ms (about 24.8 days), the longest wait a timer can honour`;
  if (opts.positive && ms < 1) return `${JSON.stringify(value)} must be at least 1ms: an interval or timeout of 0 cannot be honoured`;
  return undefined;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return s ? `${m}m${s}s` : `${m}m`;
}

/** Byte sizes: a number of bytes, or `512m`, `1g`, `64k` (Compose's units). */
export function parseByteSize(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$/i.exec(value.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Math.round(Number(m[1]) * mult);
}
