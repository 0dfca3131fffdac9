/**
 * The Docker Swarm runtime: each profile service is one Swarm service `<stack>_<service>` with
 * its replicas, created through a manager with dockerode (imported on first use).
 *
 * - Health-gated ordering across the cluster. The profile's check runs *inside every task* as its
 *   HEALTHCHECK (swarm-spec.ts), and Swarm holds a task in `starting` until its first healthy
 *   result. The engine's own probe (loopback only) cannot reach tasks on other machines, so for
 *   each service this runtime serves a *readiness endpoint* on 127.0.0.1 (`endpoint()`), which
 *   answers 200 only while the service is ready on the cluster: every desired task running, no
 *   update in flight; 503 with Swarm's reason otherwise. The engine's http gate (bounded by
 *   `dependencyTimeout`, then its health monitor) therefore judges the whole service on every
 *   node. A service without a check, or with a tcp check, is waited for in `start` instead
 *   (bounded by `swarm.readyTimeout`, default 60 s).
 * - Converge: an existing service with the same config hash is kept; a changed one is updated in
 *   place (a rolling update with `failureAction: rollback` by default), and `start` waits until
 *   the update completed and the new tasks are ready.
 * - Configs and secrets: rendered files become Swarm configs, files with mode 0600 Swarm secrets,
 *   named by content hash. The runtime declares `configsInMemory`, so the engine hands the
 *   rendered content over and never writes it on this machine (a secret exists only in the
 *   cluster's encrypted store). Objects of a service that its current spec no longer uses are removed.
 * - Everything is found by label on the manager, so `status`, `logs` and `down` work from any
 *   machine that reaches a manager, after a `kill -9` of the `stack` that created it.
 * - Swarm applies the restart policy and reschedules tasks of lost nodes (`appliesRestartPolicy`).
 * - Discovery: `placements` lists each running task at its node's address and published port
 *   (swarm-tasks.ts); the engine registers one record per task and follows them (engine/instances.ts).
 */
import { rm } from 'node:fs/promises';
import { renderedContent } from './rendered.js';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Dockerode from 'dockerode';
import { InvalidInputError, StackFailedError, type Problem } from '../errors.js';
import type { ServiceSpec } from '../profile/types.js';
import { realClock } from '../util/clock.js';
import { parseDuration } from '../util/duration.js';
import { errorText } from '../util/error-text.js';
import { engineClient } from './docker-connect.js';
import { engineError, isNotFound, statusOf } from './docker-errors.js';
import { demuxLines } from './docker-logs.js';
import type { SwarmRuntimeSettings } from '../drivers/runtime/swarm.js';
import type { RuntimeFactory } from './create.js';
import {
  healthToolOf,
  labelFilter,
  planSwarmService,
  serviceSettings,
  swarmFile,
  swarmNetworkName,
  swarmServiceName,
  swarmServiceProblems,
  SWARM_LABELS,
  type SwarmFile,
} from './swarm-spec.js';
import { describeTasks, readiness, taskInstances, type NodeDirectory, type SwarmTask, type TaskView } from './swarm-tasks.js';
import type { ExitInfo, InstanceStatus, LogOptions, Runtime, ServiceHandle } from './types.js';

export interface SwarmRuntimeOptions extends SwarmRuntimeSettings {
  /** How often readiness and exits are polled on the manager. */
  pollMs?: number;
}

/** What `inspect` reports beyond the common fields: every task, on its node. */
export interface SwarmInstanceStatus extends InstanceStatus {
  tasks: TaskView[];
  /** Desired replicas, and how many run ready. */
  replicas: { desired: number; ready: number };
}

/** What `listNodes` returns of a node that this runtime reads (dockerode types it as `any`). */
interface SwarmNode {
  ID?: string;
  Description?: { Hostname?: string };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Addr?: string };
}

const DEFAULT_READY_TIMEOUT_MS = 60_000;
/** How often a held readiness probe looks again: the gate's latency on top of Swarm's own. */
const HOLD_POLL_MS = 100;
/** How often `wait` looks for a removed service or a finished one-shot task (nothing urgent). */
const WAIT_POLL_MS = 2_000;
/** Failed tasks of one start before it counts as failed (Swarm would go on replacing them). */
const MAX_TASK_FAILURES = 3;

/** The runtime made from the profile's `swarm:` section (found by name: src/runtime/create.ts). */
export const fromProfile: RuntimeFactory<SwarmRuntimeSettings> = async ({ settings }) => createSwarmRuntime(settings);

export function createSwarmRuntime(opts: SwarmRuntimeOptions = {}): Runtime {
  const pollMs = opts.pollMs ?? 250;
  const readyTimeoutMs = opts.readyTimeout !== undefined ? (parseDuration(opts.readyTimeout) ?? DEFAULT_READY_TIMEOUT_MS) : DEFAULT_READY_TIMEOUT_MS;
  const closing = new AbortController();
  const sleep = (ms: number, signal: AbortSignal) => realClock.sleep(ms, signal);
  // Every service's `wait` and every held readiness probe sleeps on this one signal.
  setMaxListeners(0, closing.signal);
  const openStreams = new Set<NodeJS.ReadableStream>();
  /** Readiness endpoints on loopback, by service id (see the header). */
  const readinessServers = new Map<string, { server: http.Server; port: number }>();

  const engine = engineClient(opts);
  const { docker, url, call } = engine;

  async function serviceInfo(d: Dockerode, idOrName: string): Promise<Dockerode.Service | undefined> {
    try {
      return (await d.getService(idOrName).inspect()) as Dockerode.Service;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The service's tasks; none once the service is gone (the manager answers 404 then). */
  async function tasksOf(d: Dockerode, serviceName: string): Promise<SwarmTask[]> {
    try {
      return (await d.listTasks({ filters: { service: [serviceName] } })) as SwarmTask[];
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
  }

  async function nodeAddresses(d: Dockerode): Promise<NodeDirectory> {
    const nodes = (await d.listNodes()) as SwarmNode[];
    return new Map(
      nodes.map((n) => {
        const addr = n.Status?.Addr && n.Status.Addr !== '0.0.0.0' ? n.Status.Addr : (n.ManagerStatus?.Addr?.split(':')[0] ?? '');
        return [n.ID ?? '', { name: n.Description?.Hostname ?? n.ID ?? '', address: addr, state: n.Status?.State ?? 'unknown' }];
      }),
    );
  }

  async function handleOf(d: Dockerode, info: Dockerode.Service): Promise<ServiceHandle> {
    const labels = info.Spec?.Labels ?? {};
    const handle: ServiceHandle = {
      runtime: 'swarm',
      stack: labels[SWARM_LABELS.stack] ?? '',
      service: labels[SWARM_LABELS.service] ?? '',
      replica: 0,
      id: info.ID,
      containerName: info.Spec?.Name ?? '',
      startedAt: info.UpdatedAt ?? info.CreatedAt ?? '',
    };
    const views = describeTasks(await tasksOf(d, handle.containerName!), await nodeAddresses(d));
    const ports: Record<string, { host: string; port: number }> = {};
    for (const t of views.filter((v) => v.state === 'running')) {
      for (const p of t.ports) ports[String(p.container)] ??= { host: t.address, port: p.published };
    }
    if (Object.keys(ports).length > 0) handle.publishedPorts = ports;
    return handle;
  }

  /** Rendered files as Swarm configs and secrets (created when absent), by name → id. */
  async function ensureObjects(d: Dockerode, stack: string, service: string, files: SwarmFile[]): Promise<Record<string, string>> {
    const ids: Record<string, string> = {};
    for (const f of files) {
      const labels = { [SWARM_LABELS.stack]: stack, [SWARM_LABELS.service]: service, [SWARM_LABELS.file]: f.destination };
      const list = f.secret ? () => d.listSecrets({ filters: { name: [f.name] } }) : () => d.listConfigs({ filters: { name: [f.name] } });
      const found = ((await list()) as { ID: string; Spec?: { Name?: string } }[]).find((o) => o.Spec?.Name === f.name);
      if (found) {
        ids[f.name] = found.ID;
        continue;
      }
      const body = { Name: f.name, Labels: labels, Data: f.data.toString('base64') };
      try {
        const made = (await (f.secret ? d.createSecret(body) : d.createConfig(body))) as { id?: string; ID?: string };
        ids[f.name] = made.id ?? made.ID ?? '';
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
        const again = ((await list()) as { ID: string; Spec?: { Name?: string } }[]).find((o) => o.Spec?.Name === f.name);
        ids[f.name] = again?.ID ?? '';
      }
    }
    return ids;
  }

  /** Configs and secrets of a service (or the whole stack) that no current spec uses; in-use ones stay. */
  async function removeUnusedObjects(d: Dockerode, stack: string, service?: string, keep: Set<string> = new Set()): Promise<void> {
    const filters = { label: labelFilter(stack, service) };
    const configs = (await d.listConfigs({ filters })) as { ID: string; Spec?: { Name?: string } }[];
    const secrets = (await d.listSecrets({ filters })) as unknown as { ID: string; Spec?: { Name?: string } }[];
    const gone = async (remove: () => Promise<unknown>) => {
      try {
        await remove();
      } catch (err) {
        // 404: gone already; 400/409/500: still referenced by a task on its way out; a later run removes it.
        if (!isNotFound(err) && ![400, 409, 500].includes(statusOf(err) ?? 0)) throw err;
      }
    };
    for (const c of configs) if (!keep.has(c.Spec?.Name ?? '')) await gone(() => d.getConfig(c.ID).remove());
    for (const s of secrets) if (!keep.has(s.Spec?.Name ?? '')) await gone(() => d.getSecret(s.ID).remove());
  }

  /** Networks made sure of in this process (`start` would otherwise list networks every time). */
  const readyNetworks = new Set<string>();

  async function ensureNetwork(d: Dockerode, stack: string): Promise<void> {
    const name = swarmNetworkName(stack, opts);
    if (readyNetworks.has(name)) return;
    await createNetworkUnlessPresent(d, stack, name);
    readyNetworks.add(name);
  }

  async function createNetworkUnlessPresent(d: Dockerode, stack: string, name: string): Promise<void> {
    const existing = await d.listNetworks({ filters: { name: [name] } });
    if (existing.some((n) => n.Name === name)) return;
    try {
      await d.createNetwork({
        Name: name,
        Driver: 'overlay',
        Attachable: true,
        CheckDuplicate: true,
        Labels: { [SWARM_LABELS.stack]: stack, [SWARM_LABELS.network]: name },
      });
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  }

  /** The programs converted checks need, looked up in each image present on the manager. */
  async function healthToolProblems(d: Dockerode, stack: string, services: ServiceSpec[]): Promise<Problem[]> {
    const problems: Problem[] = [];
    for (const service of services) {
      const tool = healthToolOf(service, serviceSettings(opts, service.name));
      if (!tool || !service.image) continue;
      try {
        await d.getImage(service.image).inspect();
      } catch (err) {
        if (isNotFound(err)) continue; // not on the manager: the task's own failure will say so
        throw err;
      }
      if (!(await imageHasProgram(d, stack, service.image, tool))) {
        problems.push({
          code: 'health_unrunnable',
          path: `services.${service.name}.healthCheck`,
          message: `on swarm the ${service.healthCheck?.strategy} check runs '${tool}' inside the container, and image ${service.image} has no '${tool}': add it to the image, or set swarm.services.${service.name}.healthcheck to a command the image has`,
        });
      }
    }
    return problems;
  }

  /**
   * Until the service is ready: every desired task running (Swarm's `running` comes after the
   * first healthy HEALTHCHECK) and no update in flight. Rejects on a rolled-back or paused
   * update, on repeated task failures, and after `readyTimeoutMs`.
   */
  async function waitReady(d: Dockerode, name: string, since: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      const info = await serviceInfo(d, name);
      if (!info) throw new StackFailedError(`service ${name} disappeared while starting`, { code: 'swarm_service_gone' });
      const state = readiness(info, await tasksOf(d, name), since);
      if (state.failed) throw new StackFailedError(`service ${name}: ${state.failed}`, { code: 'swarm_service_failed' });
      if (state.failures >= MAX_TASK_FAILURES)
        throw new StackFailedError(`service ${name}: ${state.failures} tasks failed (${state.lastError ?? 'no reason given'})`, {
          code: 'swarm_service_failed',
        });
      if (state.ready) return;
      if (Date.now() > deadline)
        throw new StackFailedError(`service ${name} not ready within ${readyTimeoutMs} ms: ${state.summary}`, { code: 'swarm_not_ready' });
      await sleep(pollMs, closing.signal);
    }
  }

  /**
   * Replicas 0, retried when another writer got there first ("update out of sequence": a
   * concurrent `down`, or the supervisor stopping the same stack). Undefined: the service is gone.
   */
  async function scaleToZero(d: Dockerode, id: string): Promise<Dockerode.Service | undefined> {
    for (let attempt = 0; ; attempt++) {
      const info = await serviceInfo(d, id);
      if (!info?.Spec?.Mode?.Replicated) return info;
      if (info.Spec.Mode.Replicated.Replicas === 0) return info;
      try {
        const spec = { ...info.Spec, Mode: { Replicated: { Replicas: 0 } } };
        await d.getService(info.ID).update({ _query: { version: info.Version?.Index }, _body: spec });
        return info;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        if (attempt >= 5 || !/out of sequence/i.test(errorText(err))) throw err;
      }
    }
  }

  /** A loopback HTTP endpoint answering for the service's readiness on the cluster. */
  async function serveReadiness(d: Dockerode, id: string, name: string, probeTimeoutMs: number, startedAt: number): Promise<number> {
    const existing = readinessServers.get(id);
    if (existing) return existing.port;
    const holdMs = Math.max(0, probeTimeoutMs * 0.8 - pollMs);
    let cached: { at: number; status: number; body: string } | undefined;
    const server = http.createServer((_req, res) => {
      const look = async () => {
        if (cached && Date.now() - cached.at < HOLD_POLL_MS / 2) return { ...cached, settled: true };
        const info = await serviceInfo(d, id);
        const state = info ? readiness(info, await tasksOf(d, name), startedAt) : undefined;
        cached = { at: Date.now(), status: state?.ready ? 200 : 503, body: state ? (state.failed ?? state.summary) : `service ${name} is gone` };
        // Still converging (tasks scheduled, starting, updating) with nothing failed: worth waiting for.
        return { ...cached, settled: !state || state.ready || state.failed !== undefined || state.failures > 0 };
      };
      // A probe is held while the service converges, up to most of the probe's timeout, so
      // scheduling delays on the cluster do not use up the check's retries.
      const answer = async () => {
        const until = Date.now() + holdMs;
        for (;;) {
          const a = await look();
          if (a.settled || Date.now() + HOLD_POLL_MS > until) return a;
          await sleep(HOLD_POLL_MS, closing.signal);
        }
      };
      answer().then(
        (a) => res.writeHead(a.status, { 'content-type': 'text/plain' }).end(`${a.body}\n`),
        (err: unknown) => res.writeHead(503).end(`cannot read service ${name}: ${errorText(err)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    server.unref(); // the endpoint never keeps a finished `stack` alive
    const port = (server.address() as AddressInfo).port;
    readinessServers.set(id, { server, port });
    return port;
  }

  function closeReadiness(id: string): void {
    const entry = readinessServers.get(id);
    if (!entry) return;
    readinessServers.delete(id);
    entry.server.closeAllConnections();
    entry.server.close();
  }

  const runtime: Runtime = {
    name: 'swarm',
    appliesRestartPolicy: true,

    async connect() {
      await docker().catch(() => undefined);
    },

    async prepare(stack, services, { signal }) {
      const own = services.filter((s) => (s.runtime as string) === 'swarm');
      const problems = own.flatMap((s) => swarmServiceProblems(s, opts));
      if (problems.length > 0) throw new InvalidInputError(problems, 'cannot create swarm services');
      if (own.length === 0) return;
      const toolProblems = await call(`checking images of stack '${stack}'`, async (d) => {
        const info = (await d.info()) as { Swarm?: { ControlAvailable?: boolean; LocalNodeState?: string } };
        if (!info.Swarm?.ControlAvailable) {
          throw new StackFailedError(`${url()} is not a Swarm manager (node state: ${info.Swarm?.LocalNodeState ?? 'unknown'})`, { code: 'not_swarm_manager' });
        }
        return healthToolProblems(d, stack, own);
      });
      if (toolProblems.length > 0) throw new InvalidInputError(toolProblems, 'cannot create swarm services');
      signal?.throwIfAborted();
      await call(`creating the network of stack '${stack}'`, (d) => ensureNetwork(d, stack));
    },

    async start(req) {
      const { stack, service } = req;
      return call(`starting swarm service '${service.name}'`, async (d) => {
        // The engine hands the rendered files over in memory (`configsInMemory`): nothing of them,
        // a secret least of all, is written on this machine. A caller that wrote them anyway (a
        // library user) gets a secret's copy deleted once the secret exists.
        const files = await Promise.all(req.files.map(async (f) => swarmFile(stack, service.name, f.destination, f.mode, await renderedContent(f))));
        const objectIds = await ensureObjects(d, stack, service.name, files);
        await Promise.all(req.files.filter((f, i) => files[i]!.secret && f.hostPath !== undefined).map((f) => rm(f.hostPath!, { force: true })));
        const plan = planSwarmService({ stack, service, environment: req.environment, files, objectIds, settings: opts });
        await ensureNetwork(d, stack);
        const since = Date.now();
        const existing = await serviceInfo(d, plan.name);
        if (existing) {
          const labels = existing.Spec?.Labels ?? {};
          if (labels[SWARM_LABELS.stack] !== stack) {
            throw new StackFailedError(`swarm service ${plan.name} exists and is not part of stack '${stack}'`, { code: 'service_name_taken' });
          }
          if (labels[SWARM_LABELS.configHash] !== plan.configHash) {
            await d.getService(existing.ID).update({ _query: { version: existing.Version?.Index }, _body: plan.spec });
          }
        } else {
          await d.createService(plan.spec);
        }
        // A task (`kind: task`) may be done before it is ever seen running: the engine waits for its exit.
        const gatedByEngine = service.healthCheck?.strategy === 'http' || service.kind === 'task';
        if (!gatedByEngine) await waitReady(d, plan.name, existing && existing.Spec?.Labels?.[SWARM_LABELS.configHash] === plan.configHash ? 0 : since);
        const info = await serviceInfo(d, plan.name);
        if (!info) throw new StackFailedError(`service ${plan.name} disappeared while starting`, { code: 'swarm_service_gone' });
        if (service.healthCheck) await serveReadiness(d, info.ID, plan.name, service.healthCheck.timeoutMs, since);
        // Objects the previous spec used go once its tasks are gone; in-use ones stay for a later run.
        void removeUnusedObjects(d, stack, service.name, new Set(files.map((f) => f.name))).catch(() => undefined);
        return handleOf(d, info);
      });
    },

    async wait(handle): Promise<ExitInfo> {
      // Swarm restarts and reschedules; the service has stopped for good only when it is gone, or
      // when no task is meant to run any more (restart condition none, after an exit).
      try {
        const d = await docker();
        for (;;) {
          await sleep(WAIT_POLL_MS, closing.signal);
          const info = await serviceInfo(d, handle.id).catch(() => 'unknown' as const);
          if (info === 'unknown') continue;
          if (!info) return { code: null, signal: null };
          const tasks = await tasksOf(d, handle.containerName ?? handle.id).catch(() => undefined);
          if (!tasks || tasks.length === 0) continue;
          const oneShot = info.Spec?.TaskTemplate?.RestartPolicy?.Condition === 'none';
          const finished = (t: SwarmTask) => ['complete', 'failed', 'shutdown', 'rejected', 'orphaned'].includes(t.Status?.State ?? '');
          if (tasks.every((t) => t.DesiredState !== 'running' && t.DesiredState !== 'ready') || (oneShot && tasks.every(finished))) {
            const latest = [...tasks].sort((a, b) => (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? ''))[0];
            return { code: latest?.Status?.ContainerStatus?.ExitCode ?? null, signal: null };
          }
        }
      } catch {
        return new Promise<ExitInfo>(() => undefined); // closed: not exited as far as we know
      }
    },

    async stop(handle, stopOpts) {
      await call(`removing swarm service '${handle.service}'`, async (d) => {
        const name = handle.containerName ?? swarmServiceName(handle.stack, handle.service);
        closeReadiness(handle.id);
        // Scale to zero first and wait for the tasks to shut down (stop signal, then the grace
        // period, on their nodes): once a service is removed its tasks vanish from the manager
        // while their containers still run, and the stack's network would still be in use.
        const info = await scaleToZero(d, handle.id);
        if (info) {
          const deadline = Date.now() + stopOpts.gracePeriodMs + 15_000;
          const live = (tasks: SwarmTask[]) =>
            tasks.filter((t) => !['complete', 'shutdown', 'failed', 'rejected', 'orphaned', 'remove'].includes(t.Status?.State ?? ''));
          while (Date.now() < deadline && live(await tasksOf(d, name)).length > 0) await sleep(pollMs, closing.signal);
        }
        try {
          await d.getService(handle.id).remove();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        await removeUnusedObjects(d, handle.stack, handle.service);
      });
    },

    async inspect(handle): Promise<SwarmInstanceStatus> {
      return call(`inspecting swarm service '${handle.service}'`, async (d) => {
        const info = await serviceInfo(d, handle.id);
        if (!info) return { running: false, exit: { code: null, signal: null }, tasks: [], replicas: { desired: 0, ready: 0 } };
        const tasks = describeTasks(await tasksOf(d, info.Spec?.Name ?? handle.id), await nodeAddresses(d));
        const desired = info.Spec?.Mode?.Replicated?.Replicas ?? tasks.filter((t) => t.desired === 'running').length;
        const current = tasks.filter((t) => t.desired === 'running');
        const ready = current.filter((t) => t.state === 'running').length;
        const health: InstanceStatus['health'] =
          ready >= desired && desired > 0 ? 'healthy' : ready > 0 || current.some((t) => t.state === 'starting') ? 'starting' : 'unhealthy';
        return { running: ready > 0, health, tasks, replicas: { desired, ready } };
      });
    },

    logs(handle, logOpts) {
      return followLogs(handle, logOpts);
    },

    async placements(handle, service) {
      // Each running task at its node's address and published port (swarm-tasks.ts), for discovery.
      return call(`listing the tasks of swarm service '${handle.service}'`, async (d) => {
        const name = handle.containerName ?? swarmServiceName(handle.stack, handle.service);
        const [tasks, nodes] = await Promise.all([tasksOf(d, name), nodeAddresses(d)]);
        const own = { name: handle.service, port: service?.port, scheme: service?.scheme };
        return taskInstances(tasks, nodes, own, swarmNetworkName(handle.stack, opts));
      });
    },

    async discover(stack) {
      return call(`listing swarm services of stack '${stack}'`, async (d) => {
        const services = await d.listServices({ filters: { label: labelFilter(stack) } });
        const handles = await Promise.all(services.map((s) => handleOf(d, s)));
        return handles.sort((a, b) => a.service.localeCompare(b.service));
      });
    },

    async teardown(stack) {
      await call(`removing configs, secrets and networks of stack '${stack}'`, async (d) => {
        const left = await d.listServices({ filters: { label: labelFilter(stack) } });
        if (left.length > 0) return; // services of the stack still run (a partial down): keep what they use
        await removeUnusedObjects(d, stack);
        const networks = await d.listNetworks({ filters: { label: labelFilter(stack) } });
        readyNetworks.delete(swarmNetworkName(stack, opts));
        for (const n of networks) {
          // A network is released by each node once its tasks are gone, which can lag the service removal.
          const deadline = Date.now() + 20_000;
          for (;;) {
            try {
              await d.getNetwork(n.Id).remove();
              break;
            } catch (err) {
              if (isNotFound(err)) break;
              if (Date.now() > deadline) throw err;
              await sleep(500, closing.signal);
            }
          }
        }
      });
    },

    endpoint(handle, port) {
      // The engine's probes: this process's readiness endpoint for the service. Anyone else: where
      // a task publishes the port (host mode: its node's address), else the service's name on the
      // overlay network, which only clients on that network resolve.
      const served = readinessServers.get(handle.id);
      if (served) return { host: '127.0.0.1', port: served.port };
      return handle.publishedPorts?.[String(port)] ?? { host: handle.service, port };
    },

    async close() {
      closing.abort();
      for (const id of [...readinessServers.keys()]) closeReadiness(id);
      for (const s of openStreams) (s as NodeJS.ReadableStream & { destroy?(): void }).destroy?.();
      openStreams.clear();
      engine.reset();
    },
  };

  async function* followLogs(handle: ServiceHandle, logOpts: LogOptions): AsyncGenerator<string> {
    const d = await docker();
    const options = {
      stdout: true,
      stderr: true,
      follow: logOpts.follow,
      ...(logOpts.tail !== undefined ? { tail: logOpts.tail } : {}),
      ...(logOpts.signal ? { abortSignal: logOpts.signal } : {}),
    };
    let stream: NodeJS.ReadableStream | Buffer;
    try {
      stream = await d.getService(handle.id).logs(options);
    } catch (err) {
      if (logOpts.signal?.aborted) return;
      throw engineError(err, `reading logs of swarm service '${handle.service}'`, url());
    }
    if (Buffer.isBuffer(stream)) {
      yield* demuxLines([stream]);
      return;
    }
    openStreams.add(stream);
    try {
      yield* demuxLines(stream as AsyncIterable<Uint8Array>);
    } catch (err) {
      if (logOpts.signal?.aborted || !openStreams.has(stream)) return;
      throw engineError(err, `reading logs of swarm service '${handle.service}'`, url());
    } finally {
      openStreams.delete(stream);
      (stream as NodeJS.ReadableStream & { destroy?(): void }).destroy?.();
    }
  }

  return runtime;
}

/** Whether `program` exists in the image, looked up in the usual PATH folders of a created (never started) container. */
async function imageHasProgram(d: Dockerode, stack: string, image: string, program: string): Promise<boolean> {
  const container = await d.createContainer({
    Image: image,
    Entrypoint: ['/nonexistent'],
    Cmd: [],
    Labels: { [SWARM_LABELS.stack]: stack },
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    for (const dir of ['/bin', '/usr/bin', '/sbin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin']) {
      try {
        // GET, not HEAD (`infoArchive`): dockerode never finishes a HEAD response, and its socket
        // would keep `stack` alive. The tar stream is dropped unread.
        const tar = (await container.getArchive({ path: `${dir}/${program}` })) as NodeJS.ReadableStream & { destroy?(): void };
        tar.destroy?.();
        return true;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return false;
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}
