/**
 * What the page asks for about one service: its log (the tail, then following), its rendered
 * config files (masked), and the actions (restart, re-render, stop the stack).
 *
 * How each action reaches the running stack:
 * - restart and re-render: the control channel of whoever runs the stack (engine/control.ts) —
 *   the engine itself stops and starts the service (its templates re-render on the way), or
 *   re-renders them, so the supervision (health, restart policy, heartbeats) goes on. Nobody runs
 *   the stack any more (its `stack up` died): a restart is refused (nothing would supervise it);
 *   a re-render is done here, against the instances registered in discovery, as before a start.
 * - stop: exactly `stack down` (engine/stack.ts `downStack`): the live `stack up` or supervisor
 *   is asked through the supervisor protocol (stop request + SIGTERM) and stops its services; if
 *   it is dead, the services found in the state file and the runtimes are stopped from here.
 *   `stack up --ui` stops its own engine instead.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { controlRequest, readRenderRecords, rendersPath, type RenderRecord } from '../engine/control.js';
import type { RuntimeSet } from '../engine/runtimes.js';
import { downStack } from '../engine/stack.js';
import { readStateFile } from '../engine/state.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { EngineEvent } from '../engine/types.js';
import { StackFailedError, UsageError } from '../errors.js';
import type { Profile } from '../profile/types.js';
import type { ServiceHandle } from '../runtime/types.js';
import { atomicWrite } from '../util/fs.js';
import type { Masker } from './mask.js';

export interface ConfigFileView {
  path: string;
  bytes: number;
  mode: string;
  modifiedAt: string;
  secret: boolean;
  /** Masked (mask.ts). */
  content: string;
  truncated: boolean;
}

export interface ConfigsView {
  service: string;
  files: ConfigFileView[];
  lastRender?: RenderRecord;
  unknownSecrets: string[];
}

const MAX_SHOWN = 256 * 1024;

export interface ServiceData {
  logs(service: string, signal: AbortSignal, onLine: (line: string) => void): Promise<void>;
  configs(service: string): Promise<ConfigsView>;
  restart(service: string): Promise<string>;
  render(service: string): Promise<string>;
  stop(): Promise<string>;
}

export interface ServiceDataOptions {
  profile: Profile;
  stateDir: string;
  cwd: string;
  runtimes: RuntimeSet;
  masker: Masker;
  discovery?: DiscoveryManager;
  /** `stack up --ui`: stop the engine of this process. */
  stopOwnEngine?: () => Promise<void>;
  /** Events of a stop done here (as `stack down --json` prints them). */
  onEvent?: (event: EngineEvent) => void;
  /** `--var`/`--vars` of `stack ui`, for a re-render done here. */
  vars?: string[];
  varsFile?: string;
}

export function createServiceData(opts: ServiceDataOptions): ServiceData {
  const { profile, stateDir } = opts;
  const specOf = (service: string) => {
    const spec = profile.services[service];
    if (!spec) throw new UsageError(`stack '${profile.name}' has no service '${service}'`);
    return spec;
  };

  return {
    async logs(service, signal, onLine) {
      const spec = specOf(service);
      const runtime = await opts.runtimes.get(spec.runtime);
      const state = await readStateFile(stateDir);
      let handle: ServiceHandle | undefined = state?.services[service]?.handle;
      handle ??= (await runtime.discover(profile.name).catch(() => [])).find((h) => h.service === service);
      if (!handle && spec.runtime === 'process') {
        handle = {
          runtime: 'process',
          stack: profile.name,
          service,
          replica: 0,
          id: '',
          startedAt: '',
          logFile: path.join(stateDir, 'logs', `${service}.log`),
        };
      }
      if (!handle) return;
      for await (const line of runtime.logs(handle, { follow: true, tail: 200, signal })) onLine(opts.masker.text(line));
    },

    async configs(service) {
      const spec = specOf(service);
      const dir = path.join(stateDir, 'config', spec.name);
      const files: ConfigFileView[] = [];
      for (const rel of await listFiles(dir)) {
        const full = path.join(dir, rel);
        const st = await lstat(full);
        if (!st.isFile()) continue;
        const secret = (st.mode & 0o077) === 0; // written 0600: it holds a secret (template/render.ts)
        const raw = await readFile(full, 'utf8');
        const shown = raw.length > MAX_SHOWN ? raw.slice(0, MAX_SHOWN) : raw;
        files.push({
          path: rel,
          bytes: st.size,
          mode: `0${(st.mode & 0o777).toString(8)}`,
          modifiedAt: st.mtime.toISOString(),
          secret,
          content: opts.masker.configFile(shown, secret),
          truncated: shown.length < raw.length,
        });
      }
      const lastRender = (await readRenderRecords(stateDir))[service];
      return { service, files, ...(lastRender ? { lastRender } : {}), unknownSecrets: [...opts.masker.unknownSecrets] };
    },

    async restart(service) {
      specOf(service);
      const answer = await controlRequest(stateDir, { op: 'restart', service }).catch((err: unknown) => {
        throw noEngine(profile.name, err, 'restart it with `stack up`');
      });
      if (!answer.ok) throw new StackFailedError(answer.error, { code: 'action_refused' });
      return `restarting ${service}`;
    },

    async render(service) {
      const spec = specOf(service);
      if (spec.templates.length === 0) throw new UsageError(`'${service}' has no templates`);
      const answer = await controlRequest(stateDir, { op: 'render', service }).catch((err: unknown) => {
        if (nobodyThere(err)) return undefined; // nothing runs the stack: render here
        throw noEngine(profile.name, err, 'try again');
      });
      if (answer && !answer.ok) throw new StackFailedError(answer.error, { code: 'action_refused' });
      if (answer?.ok) return `re-rendered ${answer.files?.length ?? 0} file(s) of ${service}; they apply when it restarts`;
      return renderHere(opts, service);
    },

    async stop() {
      if (opts.stopOwnEngine) {
        await opts.stopOwnEngine();
        return `stack '${profile.name}' stopped`;
      }
      const report = await downStack(profile, {
        cwd: opts.cwd,
        ...(opts.discovery ? { discovery: opts.discovery } : {}),
        ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      });
      if (report.nothingRunning) return `stack '${profile.name}': nothing was running`;
      return `stack '${profile.name}' stopped${report.owner ? ` (by its \`stack up\`, pid ${report.owner.pid})` : ''}`;
    },
  };
}

/** No control channel, or nobody behind it: the engine that ran the stack is gone. */
function nobodyThere(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

function noEngine(stack: string, err: unknown, hint: string): StackFailedError {
  const gone = nobodyThere(err);
  return new StackFailedError(
    gone
      ? `nothing supervises stack '${stack}' now (its \`stack up\` is gone): ${hint}`
      : `cannot reach the engine of stack '${stack}': ${(err as Error).message}`,
    {
      code: 'no_engine',
      cause: err,
    },
  );
}

/** Nobody runs the stack: render its templates here, against what discovery has registered. */
async function renderHere(opts: ServiceDataOptions, service: string): Promise<string> {
  const { profile, stateDir, cwd } = opts;
  const [{ buildTemplateContext }, { renderServiceConfigs, renderServiceConfigsInMemory }, { flagSource, varsFileSource }, { runtimeDefinition }] =
    await Promise.all([
      import('../template/context.js'),
      import('../template/render.js'),
      import('../template/variables.js'),
      import('../drivers/runtime/registry.js'),
    ]);
  const problems: import('../errors.js').Problem[] = [];
  const secretNames = new Set(
    Object.values(profile.variables)
      .filter((v) => v.type === 'secret')
      .map((v) => v.name),
  );
  const sources = [...(opts.varsFile ? [varsFileSource(opts.varsFile, cwd, problems)] : []), flagSource(opts.vars ?? [], problems, secretNames)];
  const instances = opts.discovery ? await opts.discovery.list().catch(() => undefined) : undefined;
  const context = buildTemplateContext(profile, { ...(instances ? { instances } : {}), vars: sources, stateDir, cwd, generateSecrets: false });
  // A runtime that takes configs in memory (Swarm) never gets a file on this machine: checked only.
  const spec = profile.services[service];
  if (spec && runtimeDefinition(spec.runtime).capabilities.configsInMemory) {
    const { files } = await renderServiceConfigsInMemory(profile, service, context);
    return `rendered ${files.length} file(s) of ${service} in memory only (the ${spec.runtime} runtime keeps configs in the cluster; nothing runs the stack to hand them over)`;
  }
  const { files } = await renderServiceConfigs(profile, service, context, path.join(stateDir, 'config', service));
  const records = await readRenderRecords(stateDir);
  records[service] = { at: new Date().toISOString(), why: 're-render requested (stack ui; no engine running)', files: files.map((f) => f.destination) };
  await atomicWrite(rendersPath(stateDir), `${JSON.stringify({ version: 1, services: records }, null, 2)}\n`, 0o600);
  return `re-rendered ${files.length} file(s) of ${service} (nothing runs the stack: done by stack ui)`;
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}
