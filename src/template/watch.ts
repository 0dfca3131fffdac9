/**
 * The re-render loop (consul-template's core), shared by the supervisor that `stack up` runs and
 * by `stack render --watch`: watch the discovery records of the services a template names, wait
 * for quiescence, then hand the current records to a render callback. What a render does with
 * them (write the file only if changed, restart or signal the service) is the caller's business.
 *
 * - Quiescence (`wait: {min, max}`, consul-template's meaning): a render happens `min` after the
 *   last change, but no later than `max` after the first change of a burst (max 0: no cap). With
 *   min 0 a change renders on the next turn of the event loop.
 * - One watch per service, shared by every template that names it; each template has its own
 *   quiescence window, so a burst of changes costs one render (and one reload) per template.
 * - A list that suddenly drops every instance of a service is checked first: when discovery
 *   answers that it is unreachable, the empty answer is not believed (the last good list stays,
 *   and a warning says so), so an outage never blanks a file (consul-template #1713, #727).
 * - Every change is counted from the first list on: the first render after a start may differ
 *   from the startup one (records registered in between); the caller's "only if changed" makes
 *   that harmless.
 */
import type { ServiceInstance } from '../discovery/types.js';
import { realClock, type Clock } from '../util/clock.js';
import { errorText } from '../util/error-text.js';

/** Where records come from: a discovery manager, or anything shaped like one. */
export interface RecordSource {
  watch(service: string, opts: { signal: AbortSignal }): AsyncIterable<ServiceInstance[]>;
  /** Throws when discovery is unreachable (the manager's `check`). */
  check(): Promise<void>;
}

export interface WatchedTemplate {
  /** Identifies the template in callbacks (`<service>/<destination>`). */
  key: string;
  /** Services whose records it depends on. */
  services: string[];
  waitMinMs: number;
  /** 0: no cap. */
  waitMaxMs: number;
}

export interface TemplateWatchOptions {
  templates: WatchedTemplate[];
  source: RecordSource;
  signal: AbortSignal;
  clock?: Clock;
  /** Render this template against these records; `why` names the services that changed. Never rejects (errors are the caller's to report). */
  render(key: string, records: ServiceInstance[], why: string): Promise<void>;
  onWarning(message: string, key?: string): void;
}

export interface TemplateWatch {
  /** Render a template after its quiescence window even without a discovery change (a dependency restarted). */
  poke(key: string, why: string): void;
  /** Resolves when the signal aborts and the renders in flight are done. */
  readonly done: Promise<void>;
}

export function watchTemplates(opts: TemplateWatchOptions): TemplateWatch {
  const clock = opts.clock ?? realClock;
  const { signal } = opts;
  const lists = new Map<string, ServiceInstance[]>();
  const windows = new Map<string, Quiescence>();
  const byService = new Map<string, WatchedTemplate[]>();
  const pending: Promise<void>[] = [];

  const records = (t: WatchedTemplate) => t.services.flatMap((s) => lists.get(s) ?? []);
  for (const t of opts.templates) {
    windows.set(t.key, new Quiescence(clock, t.waitMinMs, t.waitMaxMs, signal, (why) => opts.render(t.key, records(t), why)));
    for (const s of t.services) byService.set(s, [...(byService.get(s) ?? []), t]);
  }

  const changed = (service: string, list: ServiceInstance[]) => {
    lists.set(service, list);
    for (const t of byService.get(service) ?? []) windows.get(t.key)!.poke(`records of '${service}' changed`);
  };

  const follow = async (service: string) => {
    try {
      for await (const list of opts.source.watch(service, { signal })) {
        if (signal.aborted) return;
        const before = lists.get(service);
        if (list.length === 0 && before && before.length > 0 && !(await reachable(opts.source))) {
          opts.onWarning(`discovery is unreachable and answers no instance of '${service}': keeping the last known ${before.length} (files stay as they are)`);
          continue;
        }
        changed(service, list);
      }
    } catch (err) {
      if (!signal.aborted) opts.onWarning(`the watch of '${service}' ended: ${errorText(err)}; files that name it are no longer re-rendered`);
    }
  };
  for (const service of byService.keys()) pending.push(follow(service));

  return {
    poke(key, why) {
      windows.get(key)?.poke(why);
    },
    done: Promise.all(pending).then(async () => {
      await Promise.all([...windows.values()].map((w) => w.idle()));
    }),
  };
}

async function reachable(source: RecordSource): Promise<boolean> {
  try {
    await source.check();
    return true;
  } catch {
    return false;
  }
}

/**
 * A quiescence window: `fire` runs `minMs` after the last poke, at most `maxMs` after the first
 * one (0: no cap), one run at a time (a poke during a run starts the next window).
 */
export class Quiescence {
  private first: number | undefined;
  private timer: AbortController | undefined;
  private reasons = new Set<string>();
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly clock: Clock,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly signal: AbortSignal,
    private readonly fire: (why: string) => Promise<void>,
  ) {}

  poke(why: string): void {
    if (this.signal.aborted) return;
    const now = this.clock.now();
    this.first ??= now;
    this.reasons.add(why);
    this.timer?.abort();
    const due = this.maxMs > 0 ? Math.min(now + this.minMs, this.first + this.maxMs) : now + this.minMs;
    const timer = new AbortController();
    this.timer = timer;
    this.clock.sleep(Math.max(0, due - now), AbortSignal.any([timer.signal, this.signal])).then(
      () => {
        if (this.timer !== timer) return;
        this.timer = undefined;
        this.first = undefined;
        const why = [...this.reasons].join('; ');
        this.reasons.clear();
        this.running = this.running.then(() => (this.signal.aborted ? undefined : this.fire(why))).catch(() => undefined);
      },
      () => undefined,
    );
  }

  /** Resolves once no run is in flight. */
  idle(): Promise<void> {
    return this.running;
  }
}

/**
 * The services a template names: every `service.<name>` in its text or `data:` strings (an over-
 * approximation is harmless: a render that changes nothing writes nothing), and its `external`.
 */
export function servicesNamedBy(template: { template?: string; data?: unknown; external?: string[] }, known: readonly string[]): string[] {
  const text = [template.template ?? '', ...stringsOf(template.data)].join('\n');
  const names = new Set<string>(template.external ?? []);
  for (const m of text.matchAll(/\bservice\.([A-Za-z0-9_-]+)/g)) names.add(m[1]!);
  // `{{#each service}}` or a lookup by a computed name: every service may matter.
  if (/\bservice\b(?!\.)/.test(text.replace(/\bservice\.[A-Za-z0-9_-]+/g, ''))) for (const k of known) names.add(k);
  return [...names].sort();
}

function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringsOf);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(stringsOf);
  return [];
}
