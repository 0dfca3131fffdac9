/**
 * The re-render loop on a manual clock: consul-template's `wait` (min after the last change, at
 * most max after the first), one render per burst, the outage guard (an empty answer while
 * discovery is unreachable is not believed), and which services a template names.
 */
import { describe, expect, it } from 'vitest';
import type { ServiceInstance } from '../../src/discovery/types.js';
import { createManualClock } from '../../src/util/clock.js';
import { servicesNamedBy, watchTemplates, type RecordSource } from '../../src/template/watch.js';

const inst = (service: string, id: string): ServiceInstance => ({
  id,
  service,
  address: '127.0.0.1',
  tags: [],
  meta: {},
  registeredAt: '2026-01-01T00:00:00Z',
});

/** A source whose lists a test pushes by hand; `reachable` decides what `check` says. */
function manualSource() {
  const streams = new Map<string, { push(list: ServiceInstance[]): void }>();
  let reachable = true;
  const source: RecordSource = {
    async *watch(service, { signal }) {
      const queue: ServiceInstance[][] = [];
      let wake: (() => void) | undefined;
      streams.set(service, { push: (list) => (queue.push(list), wake?.()) });
      while (!signal.aborted) {
        if (queue.length === 0) await new Promise<void>((r) => ((wake = r), signal.addEventListener('abort', () => r(), { once: true })));
        while (queue.length > 0) yield queue.shift()!;
      }
    },
    async check() {
      if (!reachable) throw new Error('unreachable');
    },
  };
  return { source, push: (service: string, list: ServiceInstance[]) => streams.get(service)!.push(list), setReachable: (r: boolean) => (reachable = r) };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

async function setup(waitMinMs: number, waitMaxMs: number) {
  const clock = createManualClock();
  const m = manualSource();
  const renders: { at: number; ids: string[]; why: string }[] = [];
  const warnings: string[] = [];
  const stop = new AbortController();
  const watch = watchTemplates({
    templates: [{ key: 'app/a.env', services: ['api'], waitMinMs, waitMaxMs }],
    source: m.source,
    signal: stop.signal,
    clock,
    render: async (_key, records, why) => void renders.push({ at: clock.now(), ids: records.map((r) => r.id), why }),
    onWarning: (w) => warnings.push(w),
  });
  await tick();
  return { clock, ...m, renders, warnings, stop, watch };
}

describe('watchTemplates', () => {
  it('renders min after the last change of a burst: one render for the burst', async () => {
    const s = await setup(500, 0);
    s.push('api', [inst('api', 'a')]);
    await tick();
    await s.clock.advance(300);
    s.push('api', [inst('api', 'a'), inst('api', 'b')]);
    await tick();
    await s.clock.advance(300);
    expect(s.renders).toEqual([]);
    await s.clock.advance(200);
    expect(s.renders).toEqual([{ at: 800, ids: ['a', 'b'], why: "records of 'api' changed" }]);
    s.stop.abort();
    await s.watch.done;
  });

  it('renders no later than max after the first change while changes keep coming', async () => {
    const s = await setup(500, 1_000);
    for (let i = 0; i < 6; i++) {
      s.push('api', [inst('api', `i${i}`)]);
      await tick();
      await s.clock.advance(300);
    }
    expect(s.renders[0]).toMatchObject({ at: 1_000 });
    s.stop.abort();
  });

  it('an empty answer while discovery is unreachable is not believed; a reachable one is', async () => {
    const s = await setup(0, 0);
    s.push('api', [inst('api', 'a')]);
    await tick();
    await s.clock.advance(1);
    s.setReachable(false);
    s.push('api', []);
    await tick();
    await s.clock.advance(1);
    expect(s.renders.map((r) => r.ids)).toEqual([['a']]);
    expect(s.warnings).toEqual([expect.stringContaining("discovery is unreachable and answers no instance of 'api'")]);
    s.setReachable(true);
    s.push('api', []);
    await tick();
    await s.clock.advance(1);
    expect(s.renders.map((r) => r.ids)).toEqual([['a'], []]);
    s.stop.abort();
  });

  it('poke renders after the window without a discovery change', async () => {
    const s = await setup(100, 0);
    s.watch.poke('app/a.env', "dependency 'db' was restarted");
    await s.clock.advance(100);
    expect(s.renders).toEqual([{ at: 100, ids: [], why: "dependency 'db' was restarted" }]);
    s.stop.abort();
  });
});

describe('servicesNamedBy', () => {
  it('finds service.<name> in text and data, plus external; a bare `service` means every one', () => {
    expect(servicesNamedBy({ template: '{{service.api.url}} {{#each service.db.instances}}{{/each}}' }, ['api', 'db', 'x'])).toEqual(['api', 'db']);
    expect(servicesNamedBy({ data: { a: ['{{service.cache.host}}'] }, external: ['remote'] }, [])).toEqual(['cache', 'remote']);
    expect(servicesNamedBy({ template: '{{#each service}}{{@key}}{{/each}}' }, ['api', 'db'])).toEqual(['api', 'db']);
  });
});
