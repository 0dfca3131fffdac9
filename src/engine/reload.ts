/**
 * After startup, a service's config files follow discovery: for each service with
 * templates, the records of the services they name are watched (template/watch.ts: quiescence,
 * outage guard); a template is rendered again against them, written only when its content
 * changed, and then its change mode applies to the running service:
 *   - restart (default): stopped and started again (the start renders it once more, against the
 *     same records, so the result is the same file);
 *   - signal: `changeSignal` (default SIGHUP) is sent to it;
 *   - script: `changeScript` runs (argv, no shell unless written, in the profile's folder);
 *   - noop: the file changes, nothing else.
 * `splay` delays a restart or signal by a random time up to it, so replicas do not reload at once.
 * A runtime that takes configs in memory (`configsInMemory`: Swarm) gets no file: the new content
 * is handed to it and it updates the running service in place (any change mode but noop).
 * A render that fails keeps the last good file and is a warning. Every render and reload is an
 * event (`--json`, the supervisor log) and the last one shows in `stack status`.
 *
 * A dependent whose dependency was restarted with `onDependencyRestart: rerender` is re-rendered
 * through the same path (`poke`), after its quiescence window.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { ServiceInstance } from '../discovery/types.js';
import { runtimeDefinition } from '../drivers/runtime/registry.js';
import type { Profile, TemplateSpec } from '../profile/types.js';
import { servicesNamedBy, watchTemplates, type RecordSource, type TemplateWatch } from '../template/watch.js';
import type { Clock } from '../util/clock.js';
import type { ServiceLifecycle } from './lifecycle.js';
import { errorText } from '../util/error-text.js';
import { recordFilter } from './hosts.js';
import type { RerenderTemplate } from './templates.js';
import type { EngineEvent, RenderOutcome } from './types.js';

export interface ReloadHost {
  readonly profile: Profile;
  readonly stateDir: string;
  readonly clock: Clock;
  emit(event: EngineEvent): void;
  warn(message: string, service?: string): void;
  persist(): void;
}

export class TemplateReloader {
  private readonly watches = new Map<string, { watch: TemplateWatch; latest: Map<string, ServiceInstance[]> }>();
  private readonly stop = new AbortController();

  constructor(
    private readonly host: ReloadHost,
    private readonly discovery: DiscoveryManager,
    private readonly rerender: RerenderTemplate,
    /** Random source for `splay` (tests: fixed). */
    private readonly random: () => number = Math.random,
  ) {}

  /** Watch this service's templates from now on (once: a restart keeps the watch). */
  follow(s: ServiceLifecycle): void {
    if (this.watches.has(s.name) || s.spec.templates.length === 0 || this.stop.signal.aborted) return;
    const known = Object.keys(this.host.profile.services);
    const latest = new Map<string, ServiceInstance[]>();
    const byKey = new Map(s.spec.templates.map((t) => [keyOf(s.name, t), t]));
    const watch = watchTemplates({
      templates: s.spec.templates.map((t) => ({
        key: keyOf(s.name, t),
        services: servicesNamedBy(t, known),
        waitMinMs: t.waitMinMs ?? 0,
        waitMaxMs: t.waitMaxMs ?? 0,
      })),
      source: this.source(),
      signal: this.stop.signal,
      clock: this.host.clock,
      render: async (key, records, why) => {
        latest.set(key, records);
        await this.renderOne(s, byKey.get(key)!, records, why);
      },
      onWarning: (message) => this.host.warn(message, s.name),
    });
    this.watches.set(s.name, { watch, latest });
  }

  /** Discovery, as templates see it: with a shared discovery, only the records of this stack's services (hosts.ts). */
  private source(): RecordSource {
    const counts = recordFilter(this.host.profile);
    const discovery = this.discovery;
    if (!counts) return discovery;
    return {
      check: () => discovery.check(),
      async *watch(service, opts) {
        for await (const list of discovery.watch(service, opts)) yield list.filter(counts);
      },
    };
  }

  /** The records its templates were last rendered against (a restart renders against the same). */
  recordsFor(service: string): ServiceInstance[] {
    const entry = this.watches.get(service);
    if (!entry) return [];
    const seen = new Map<string, ServiceInstance>();
    for (const list of entry.latest.values()) for (const r of list) seen.set(`${r.service}/${r.id}`, r);
    return [...seen.values()];
  }

  /** Render every template of this service again, after its quiescence window. */
  poke(s: ServiceLifecycle, why: string): void {
    const entry = this.watches.get(s.name);
    for (const t of s.spec.templates) entry?.watch.poke(keyOf(s.name, t), why);
  }

  close(): void {
    this.stop.abort();
  }

  private async renderOne(s: ServiceLifecycle, template: TemplateSpec, records: ServiceInstance[], why: string): Promise<void> {
    const configDir = path.join(this.host.stateDir, 'config', s.name);
    let outcome: RenderOutcome;
    let reason = why;
    try {
      outcome = (await this.rerender(s.spec, template, records, configDir)).changed ? 'changed' : 'unchanged';
    } catch (err) {
      outcome = 'failed';
      reason = `${why}: ${errorText(err)}`;
      this.host.warn(`${template.destination} could not be rendered, the last good file is kept: ${errorText(err)}`, s.name);
    }
    s.status.lastRender = { at: new Date().toISOString(), template: template.destination, outcome, reason };
    this.host.emit({ type: 'render', service: s.name, template: template.destination, outcome, reason });
    this.host.persist();
    if (outcome !== 'changed' || !s.running) return; // not running: its next start renders the new file anyway
    await this.apply(s, template, `${template.destination} changed (${why})`, configDir);
  }

  private async apply(s: ServiceLifecycle, t: TemplateSpec, reason: string, configDir: string): Promise<void> {
    const mode = t.changeMode ?? 'restart';
    const emit = (extra: { signal?: string } = {}) =>
      this.host.emit({ type: 'reload', service: s.name, action: mode, reason, template: t.destination, ...extra });
    if (mode !== 'noop' && runtimeDefinition(s.spec.runtime).capabilities.configsInMemory) {
      // Its configs live in the runtime (Swarm configs and secrets), not in a file here: the new
      // content reaches the instance only through the runtime, which updates it in place (Swarm:
      // a rolling update, so a restart or a signal both come down to that).
      emit();
      await s.updateConfigs().catch((err: unknown) => this.host.warn(`could not update it after ${t.destination} changed: ${errorText(err)}`, s.name));
      return;
    }
    switch (mode) {
      case 'noop':
        return emit();
      case 'restart':
        if (!s.running) return;
        emit();
        await this.eachReplica(s, t, (l) => l.restartNow(reason));
        return;
      case 'signal': {
        const signal = t.changeSignal ?? 'SIGHUP';
        await this.eachReplica(s, t, (l) =>
          l.sendSignal(signal).catch((err: unknown) => this.host.warn(`could not send ${signal} after ${t.destination} changed: ${errorText(err)}`, s.name)),
        );
        emit({ signal });
        return;
      }
      case 'script': {
        emit();
        const failure = await runScript(t.changeScript ?? [], {
          cwd: this.host.profile.source.dir,
          env: { ...process.env, STACK_SERVICE: s.name, STACK_TEMPLATE: path.join(configDir, t.destination) },
        });
        if (failure) this.host.warn(`changeScript of ${t.destination} ${failure}`, s.name);
        return;
      }
    }
  }

  /** Every running replica, each after its own random `splay` (so they do not all reload at once). */
  private async eachReplica(s: ServiceLifecycle, t: TemplateSpec, act: (l: ServiceLifecycle) => Promise<void>): Promise<void> {
    const splayMs = t.splayMs ?? 0;
    await Promise.all(
      [s, ...s.peers]
        .filter((l) => l === s || l.running)
        .map(async (l) => {
          if (splayMs > 0) {
            try {
              await this.host.clock.sleep(Math.floor(this.random() * splayMs), this.stop.signal);
            } catch {
              return;
            }
          }
          await act(l);
        }),
    );
  }
}

function keyOf(service: string, t: TemplateSpec): string {
  return `${service}/${t.destination}`;
}

/** Run an argv (no shell); resolves with why it failed, or undefined. */
export function runScript(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<string | undefined> {
  const [program, ...args] = argv;
  if (!program) return Promise.resolve('is empty');
  return new Promise((resolve) => {
    const child = spawn(program, args, { cwd: opts.cwd, env: opts.env, stdio: 'ignore' });
    child.once('error', (err) => resolve(`could not run: ${err.message}`));
    child.once('exit', (code, signal) => resolve(code === 0 ? undefined : signal ? `was killed by ${signal}` : `exited with code ${code}`));
  });
}
