/**
 * The behaviour every runtime shares (issue 10, item 4), as test/discovery/conformance.ts is for
 * discovery backends: a runtime's test file runs this suite in one line.
 *
 *   describeRuntimeConformance('process', processTarget);
 *
 * A target says how to make the runtime (a fresh object stands for a fresh `stack` process) and
 * which service spec gives each behaviour the suite needs on that runtime (an HTTP server, a
 * program that prints and runs, one that ignores its stop signal, one that exits with a code).
 * Capabilities a runtime lacks (an in-memory runtime has no logs, and nothing to find from
 * another object) are declared, and their tests skipped.
 *
 * Covered: start, the ready endpoint (`endpoint` + an HTTP probe), stop with grace (the stop
 * signal ends it, no SIGKILL), escalation (the stop signal is ignored: SIGKILL after the grace
 * period), discovery after a restart of the tool (a new runtime object finds and stops the
 * instance), logs (all, and tail), exit reporting (`wait` and `inspect`). No test asserts a
 * wall-clock time; waits poll until a condition holds or a generous deadline passes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { waitUntilHealthy } from '../../src/health/index.js';
import type { HealthStrategy } from '../../src/health/types.js';
import type { HealthCheckSpec, ServiceSpec } from '../../src/profile/types.js';
import type { ExitInfo, Runtime, ServiceHandle, StartRequest } from '../../src/runtime/types.js';
import { freePort, waitFor } from '../helpers/net.js';

/** What a service of the suite does; the target turns it into a spec for its runtime. */
export type Behaviour =
  /** Answers HTTP 200 on GET / at `port` (loopback) until stopped; ends on the stop signal. */
  | { kind: 'http'; port: number }
  /** Prints `lines` (one each, in order), then runs until stopped; ends on the stop signal. */
  | { kind: 'print'; lines: string[] }
  /** Ignores its stop signal: only SIGKILL ends it. */
  | { kind: 'ignore-stop-signal' }
  /** Exits by itself at once with `code`. */
  | { kind: 'exit'; code: number };

export interface RuntimeTargetContext {
  /** The state folder of this test (start requests use it too). */
  stateDir: string;
}

export interface RuntimeConformanceTarget {
  /** A runtime object; each call is a fresh one, as a new `stack` process would make. */
  make(ctx: RuntimeTargetContext): Runtime | Promise<Runtime>;
  /** The spec of a service named `name` that behaves as asked. */
  service(name: string, behaviour: Behaviour): ServiceSpec;
  /** Once before the suite (build images, …). */
  setup?(): Promise<void>;
  /** After each test: remove whatever of `stack` a failed test left behind. */
  cleanup?(stack: string): Promise<void>;
  /** The health strategy that answers for this runtime's endpoints (default: the real HTTP probe). */
  health?(runtime: Runtime): HealthStrategy;
  /** A runtime without logs (in-memory) skips the log tests. Default true. */
  logs?: boolean;
  /** A fresh runtime object finds instances started by another (pid files, labels). Default true. */
  discoversAcrossRestarts?: boolean;
  /** Longest wait for anything to happen (starting a container takes a while on a busy machine). */
  waitMs?: number;
}

/** The end of an instance that got SIGKILL (a process: the signal; a container: 128 + 9). */
export function killed(exit: ExitInfo): boolean {
  return exit.signal === 'SIGKILL' || exit.code === 137;
}

export function describeRuntimeConformance(name: string, target: RuntimeConformanceTarget): void {
  const waitMs = target.waitMs ?? 20_000;
  const logs = target.logs ?? true;
  const acrossRestarts = target.discoversAcrossRestarts ?? true;

  describe(`runtime conformance: ${name}`, () => {
    let dir: string;
    let stack: string;
    let runtime: Runtime;
    const runtimes: Runtime[] = [];
    const started: { runtime: Runtime; handle: ServiceHandle }[] = [];

    const make = async () => {
      const r = await target.make({ stateDir: path.join(dir, 'state') });
      runtimes.push(r);
      return r;
    };
    const request = (service: ServiceSpec): StartRequest => ({
      stack,
      service,
      replica: 0,
      environment: { ...service.environment },
      files: [],
      configDir: path.join(dir, 'config', service.name),
      stateDir: path.join(dir, 'state'),
      profileDir: dir,
    });
    const start = async (service: ServiceSpec, on: Runtime = runtime) => {
      await on.prepare(stack, [service], {});
      const handle = await on.start(request(service));
      started.push({ runtime: on, handle });
      return handle;
    };
    const ready = async (on: Runtime, handle: ServiceHandle, port: number) => {
      const check: HealthCheckSpec = { strategy: 'http', endpoint: '/', intervalMs: 100, timeoutMs: 2000, retries: 0, startPeriodMs: 0 };
      const strategy = target.health?.(on);
      return waitUntilHealthy(check, on.endpoint(handle, port), { deadlineMs: waitMs, ...(strategy ? { strategy } : {}) });
    };
    const readLogs = async (on: Runtime, handle: ServiceHandle, tail?: number) => {
      const lines: string[] = [];
      for await (const line of on.logs(handle, { follow: false, ...(tail !== undefined ? { tail } : {}) })) lines.push(line);
      return lines;
    };

    if (target.setup) beforeAll(() => target.setup!(), 120_000);

    beforeEach(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), `runtime-conformance-${name}-`));
      stack = `conf-${randomBytes(4).toString('hex')}`;
      runtime = await make();
    });

    afterEach(async () => {
      for (const { runtime: on, handle } of started.splice(0).reverse()) {
        await on.stop(handle, { signal: 'SIGKILL', gracePeriodMs: 0 }).catch(() => undefined);
      }
      await runtime.teardown(stack).catch(() => undefined);
      for (const r of runtimes.splice(0)) await r.close();
      await target.cleanup?.(stack);
      await rm(dir, { recursive: true, force: true });
    });

    afterAll(async () => {
      for (const r of runtimes.splice(0)) await r.close();
    });

    it('starts an instance that runs and answers at its ready endpoint', async () => {
      const port = await freePort();
      const handle = await start(target.service('web', { kind: 'http', port }));
      expect(handle).toMatchObject({ runtime: runtime.name, stack, service: 'web', replica: 0 });
      expect(await ready(runtime, handle, port)).toMatchObject({ ok: true });
      expect(await runtime.inspect(handle)).toMatchObject({ running: true });
    });

    it('stops with grace: the stop signal ends it, no SIGKILL; then it is not running and not discovered', async () => {
      const port = await freePort();
      const handle = await start(target.service('web', { kind: 'http', port }));
      await ready(runtime, handle, port);
      const exited = runtime.wait(handle);
      await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: waitMs });
      expect(killed(await exited)).toBe(false);
      expect(await runtime.inspect(handle)).toMatchObject({ running: false });
      expect((await runtime.discover(stack)).filter((h) => h.service === 'web')).toEqual([]);
      await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 1000 }); // stopping what is gone is no error
    });

    it('escalates to SIGKILL after the grace period when the stop signal is ignored', async () => {
      const handle = await start(target.service('stubborn', { kind: 'ignore-stop-signal' }));
      await waitFor(async () => (await runtime.inspect(handle)).running, waitMs, 'the instance running');
      const exited = runtime.wait(handle);
      await runtime.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 500 });
      expect(killed(await exited)).toBe(true);
      expect(await runtime.inspect(handle)).toMatchObject({ running: false });
    });

    it.runIf(acrossRestarts)('a fresh runtime object (the tool restarted) discovers the running instance, and can stop it', async () => {
      const port = await freePort();
      const handle = await start(target.service('web', { kind: 'http', port }));
      await ready(runtime, handle, port);
      await runtime.close();

      const fresh = await make();
      const found = (await fresh.discover(stack)).filter((h) => h.service === 'web');
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({ runtime: runtime.name, stack, service: 'web', replica: 0, id: handle.id });
      expect(await fresh.inspect(found[0]!)).toMatchObject({ running: true });
      expect(await ready(fresh, found[0]!, port)).toMatchObject({ ok: true });
      await fresh.stop(found[0]!, { signal: 'SIGTERM', gracePeriodMs: waitMs });
      expect(await fresh.inspect(found[0]!)).toMatchObject({ running: false });
      expect((await fresh.discover(stack)).filter((h) => h.service === 'web')).toEqual([]);
    });

    it.runIf(logs)('returns what the instance printed, as lines, and only the last ones with tail', async () => {
      const lines = ['conformance line one', 'conformance line two', 'conformance line three'];
      const handle = await start(target.service('printer', { kind: 'print', lines }));
      const all = await waitFor(
        async () => {
          const got = await readLogs(runtime, handle);
          return lines.every((l) => got.includes(l)) ? got : undefined;
        },
        waitMs,
        'the printed lines',
      );
      expect(all.filter((l) => lines.includes(l))).toEqual(lines);
      expect(await readLogs(runtime, handle, 1)).toEqual([lines[2]]);
    });

    it('reports the exit code of an instance that exits by itself, through wait and inspect', async () => {
      const handle = await start(target.service('task', { kind: 'exit', code: 3 }));
      expect(await runtime.wait(handle)).toEqual({ code: 3, signal: null });
      expect(await runtime.inspect(handle)).toMatchObject({ running: false, exit: { code: 3, signal: null } });
    });
  });
}
