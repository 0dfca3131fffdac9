/**
 * `stack render --watch`: the supervisor's re-render loop (template/watch.ts) without starting
 * anything, for a service that runs elsewhere (a sidecar, a systemd unit). Every template is
 * checked first (problems: exit 2, nothing written); discovery must answer (unreachable: exit 3).
 * Then each selected service's files follow the discovery records their templates name: written
 * (atomically, only when the content changed) into `--out` (`<out>/<service>/<destination>`),
 * after each template's `wait` window, and on a change
 *   --exec CMD    runs CMD through /bin/sh (it is the user's own command line), with
 *                 STACK_SERVICE and STACK_TEMPLATE (the file's path) in its environment, or
 *   --pid PID     is sent --signal (default SIGHUP).
 * A failed render keeps the last good file (a warning); so does an answer that drops every
 * instance while discovery is unreachable. SIGINT/SIGTERM end it (exit 0). `--json`: one JSON
 * event per line (`render`, `reload`, `warning`).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ExitCode, UsageError } from '../../errors.js';
import { loadProfile } from '../../profile/load.js';
import type { ServiceSpec, TemplateSpec } from '../../profile/types.js';
import { stateDirOf } from '../../template/secrets.js';
import { servicesNamedBy, watchTemplates } from '../../template/watch.js';
import { didYouMean } from '../../util/suggest.js';
import { profileRef } from '../common.js';
import { clean, paint, type Output } from '../output.js';
import type { RenderOptions } from './render.js';
import { errorText } from '../../util/error-text.js';

export interface RenderWatchOptions extends RenderOptions {
  exec?: string;
  pid?: string;
  signal?: string;
}

type WatchEvent =
  | { type: 'render'; service: string; template: string; outcome: 'changed' | 'unchanged' | 'failed'; reason: string; path?: string }
  | { type: 'reload'; service: string; template: string; action: 'exec' | 'signal'; reason: string; pid?: number; signal?: string }
  | { type: 'warning'; message: string; service?: string };

export async function run(opts: RenderWatchOptions, o: Output): Promise<number> {
  const cwd = process.cwd();
  if (opts.check || opts.dryRun || opts.out === '-' || opts.discoverySnapshot)
    throw new UsageError('--watch writes files from live discovery: it does not combine with --check, --dry-run, --out - or --discovery-snapshot');
  if (opts.exec && opts.pid) throw new UsageError('give --exec or --pid, not both');
  const pid = opts.pid === undefined ? undefined : Number(opts.pid);
  if (pid !== undefined && (!Number.isInteger(pid) || pid <= 0)) throw new UsageError(`--pid must be a process id, not '${opts.pid}'`);
  const signal = opts.signal ?? 'SIGHUP';
  if (!/^SIG[A-Z0-9]+$/.test(signal)) throw new UsageError(`--signal must be a signal name like SIGHUP, not '${signal}'`);

  const selected = opts.service && opts.service.length > 0 ? [...new Set(opts.service)] : undefined;
  const profile = loadProfile(profileRef(opts, o), selected ? { services: selected } : {});
  const unknown = (selected ?? []).filter((s) => !profile.services[s]);
  if (unknown.length > 0) throw new UsageError(unknown.map((s) => `unknown service '${s}'${didYouMean(s, Object.keys(profile.services))}`).join('; '));
  const services = (
    selected ??
    Object.values(profile.services)
      .filter((s) => s.enable)
      .map((s) => s.name)
  ).map((name) => profile.services[name]!);

  const stateDir = stateDirOf(profile, cwd);
  const outDir = path.resolve(
    cwd,
    opts.out === undefined || opts.out === '.stack/<stack>/config' ? path.join(stateDir, 'config') : opts.out.replaceAll('<stack>', profile.name),
  );
  const [{ createDiscovery }, { createTemplateHooks }] = await Promise.all([import('../../discovery/index.js'), import('../../engine/templates.js')]);
  const discovery = await createDiscovery(profile.discovery);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await discovery.check(); // unreachable: exit 3
    const hooks = await createTemplateHooks(
      profile,
      services.map((s) => s.name),
      { stateDir, cwd, discovery, ...(opts.var ? { vars: opts.var } : {}), ...(opts.vars ? { varsFile: opts.vars } : {}) },
    ); // invalid templates: exit 2, nothing written
    const emit = (e: WatchEvent) => print(o, opts.json === true, e);
    if (!hooks) {
      emit({ type: 'warning', message: 'no selected service has templates: nothing to watch' });
      return ExitCode.ok;
    }
    const known = Object.keys(profile.services);
    const entries = services.flatMap((svc) => svc.templates.map((t) => ({ svc, t, key: `${svc.name}/${t.destination}` })));
    const byKey = new Map(entries.map((e) => [e.key, e]));
    const reload = reloader({ ...(opts.exec ? { exec: opts.exec } : {}), ...(pid !== undefined ? { pid } : {}), signal, cwd }, emit);
    const watch = watchTemplates({
      templates: entries.map(({ t, key }) => ({ key, services: servicesNamedBy(t, known), waitMinMs: t.waitMinMs ?? 0, waitMaxMs: t.waitMaxMs ?? 0 })),
      source: discovery,
      signal: stop.signal,
      render: async (key, records, why) => {
        const { svc, t } = byKey.get(key)!;
        const outcome = await renderOne(hooks.rerender, svc, t, records, path.join(outDir, svc.name));
        if ('error' in outcome) {
          emit({ type: 'warning', service: svc.name, message: `${t.destination} could not be rendered, the last good file is kept: ${outcome.error}` });
          emit({ type: 'render', service: svc.name, template: t.destination, outcome: 'failed', reason: `${why}: ${outcome.error}` });
          return;
        }
        emit({
          type: 'render',
          service: svc.name,
          template: t.destination,
          outcome: outcome.changed ? 'changed' : 'unchanged',
          reason: why,
          path: outcome.path,
        });
        if (outcome.changed) await reload(svc.name, t.destination, `${t.destination} changed (${why})`, outcome.path);
      },
      onWarning: (message) => emit({ type: 'warning', message }),
    });
    // Discovery's watchers hold no reference on the event loop (they must not keep a library
    // user's process alive): this command lives until it is told to stop.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
    clearInterval(keepAlive);
    await watch.done;
    return ExitCode.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stop.abort();
    await discovery.close();
  }
}

async function renderOne(
  rerender: (
    service: ServiceSpec,
    template: TemplateSpec,
    records: import('../../discovery/types.js').ServiceInstance[],
    dir: string,
  ) => Promise<{ changed: boolean; path: string }>,
  svc: ServiceSpec,
  t: TemplateSpec,
  records: import('../../discovery/types.js').ServiceInstance[],
  dir: string,
): Promise<{ changed: boolean; path: string } | { error: string }> {
  try {
    return await rerender(svc, t, records, dir);
  } catch (err) {
    return { error: errorText(err) };
  }
}

/** What a changed file does: run --exec (one at a time), or signal --pid. */
function reloader(opts: { exec?: string; pid?: number; signal: string; cwd: string }, emit: (e: WatchEvent) => void) {
  let running: Promise<void> = Promise.resolve();
  return (service: string, template: string, reason: string, file: string): Promise<void> => {
    if (opts.pid !== undefined) {
      try {
        process.kill(opts.pid, opts.signal);
        emit({ type: 'reload', service, template, action: 'signal', reason, pid: opts.pid, signal: opts.signal });
      } catch (err) {
        emit({ type: 'warning', service, message: `could not send ${opts.signal} to pid ${opts.pid}: ${errorText(err)}` });
      }
      return Promise.resolve();
    }
    const command = opts.exec;
    if (!command) return Promise.resolve();
    running = running.then(
      () =>
        new Promise<void>((resolve) => {
          emit({ type: 'reload', service, template, action: 'exec', reason });
          const child = spawn('/bin/sh', ['-c', command], {
            cwd: opts.cwd,
            stdio: ['ignore', 'inherit', 'inherit'],
            env: { ...process.env, STACK_SERVICE: service, STACK_TEMPLATE: file },
          });
          child.once('error', (err) => {
            emit({ type: 'warning', service, message: `--exec could not run: ${err.message}` });
            resolve();
          });
          child.once('exit', (code, sig) => {
            if (code !== 0) emit({ type: 'warning', service, message: `--exec ${sig ? `was killed by ${sig}` : `exited with code ${code}`}` });
            resolve();
          });
        }),
    );
    return running;
  };
}

function print(o: Output, json: boolean, e: WatchEvent): void {
  if (json) return o.out(JSON.stringify({ time: new Date().toISOString(), ...e }));
  switch (e.type) {
    case 'render':
      if (e.outcome === 'changed') o.out(`${e.service}/${e.template}: re-rendered — ${clean(e.reason)}`);
      else if (e.outcome === 'failed') o.err(paint(o, 'yellow', `${e.service}/${e.template}: render failed, the last good file is kept — ${clean(e.reason)}`));
      return;
    case 'reload':
      return o.out(`${e.service}/${e.template}: ${e.action === 'exec' ? 'ran --exec' : `sent ${e.signal} to pid ${e.pid}`}`);
    case 'warning':
      return o.err(paint(o, 'yellow', `warning: ${e.service ? `${e.service}: ` : ''}${clean(e.message)}`));
  }
}
