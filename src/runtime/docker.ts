/**
 * The Docker runtime: services as containers, through dockerode (imported on first use).
 *
 * - Containers are found by their labels (docker-spec.ts), so `down`, `status` and `logs` work
 *   from a process that did not start them.
 * - `start` converges like Compose: a running container with the same config hash is reused;
 *   a changed or stopped one is removed and recreated.
 * - Docker applies the restart policy (`appliesRestartPolicy`); `wait` resolves only when a
 *   container has stopped for good.
 * - Health checks reach containers on loopback only: host networking, or ports published on
 *   127.0.0.1 (`endpoint`), never a bridge address.
 */
import { realClock } from '../util/clock.js';
import { renderedContent } from './rendered.js';
import os from 'node:os';
import type Dockerode from 'dockerode';
import { InvalidInputError, StackFailedError, type Problem } from '../errors.js';
import type { DockerRuntimeSettings } from '../drivers/runtime/docker.js';
import type { ServiceSpec } from '../profile/types.js';
import { engineClient, type DockerConnectOptions } from './docker-connect.js';
import { engineError, isNotFound, statusOf } from './docker-errors.js';
import { ensureImages, localImage, type PullProgress } from './docker-images.js';
import { demuxLines } from './docker-logs.js';
import { exitInfo, handleOf, healthOf } from './docker-inspect.js';
import { LABELS, planContainer, sha256, stackLabelFilter, stackNetworksFor } from './docker-spec.js';
import type { RuntimeFactory } from './create.js';
import type { ExitInfo, InstanceStatus, LogOptions, Runtime, ServiceHandle, StartRequest, StopOptions } from './types.js';

export interface DockerRuntimeOptions extends DockerConnectOptions {
  /** Name of the stack's default network (the profile's `docker.network`); default `<stack>_default`. */
  network?: string;
  onPullProgress?: PullProgress;
  /** Overrides every service's `pull` (the `--pull` flag of `stack up`). */
  pull?: ServiceSpec['pull'];
  /** How long the first ping may take before the engine counts as unreachable. */
  pingTimeoutMs?: number;
}

/**
 * The runtime made from the profile's `docker:` section (found by name: src/runtime/create.ts). A
 * profile with `hosts:` gets one engine per host behind it (docker-hosts.ts); the section's TLS
 * settings and network apply to every engine, its `host` names the default one.
 */
export const fromProfile: RuntimeFactory<DockerRuntimeSettings> = async ({ settings, pull, hosts, onWarning }) => {
  const options = (host: string | undefined): DockerRuntimeOptions => ({
    ...(host !== undefined ? { host } : {}),
    ...(settings.tlsVerify !== undefined ? { tlsVerify: settings.tlsVerify } : {}),
    ...(settings.certPath !== undefined ? { certPath: settings.certPath } : {}),
    ...(settings.network !== undefined ? { network: settings.network } : {}),
    ...(pull !== undefined ? { pull } : {}),
  });
  if (!hosts) return createDockerRuntime(options(settings.host));
  const { createDockerHostsRuntime } = await import('./docker-hosts.js');
  return createDockerHostsRuntime({
    hosts,
    engineRuntime: (url) => createDockerRuntime(options(url ?? settings.host)),
    ...(onWarning ? { onWarning } : {}),
  });
};

/** How often `wait` looks again while Docker is restarting a container. */
const RESTART_POLL_MS = 200;

export function createDockerRuntime(opts: DockerRuntimeOptions = {}): Runtime {
  const openStreams = new Set<NodeJS.ReadableStream>();
  /**
   * Aborts the long-polls of `wait` on close: a pending request would keep the process alive, and
   * `stack up --detach` must exit while its containers run on. Waits cut short this way stay
   * pending, as the process runtime's do: the instance has not exited as far as we know.
   */
  const pendingWaits = new Set<AbortController>();
  /**
   * Removals still running, by container id. `stop` returns once the container has stopped and
   * removes it in the background: under load a removal costs dockerd as much as the stop, and
   * overlapping it with the next stop of a reverse-order `down` shortens the wait. Whatever
   * looks at a stack again (start, inspect, discover, teardown, close) first lets its removals end.
   */
  const removals = new Map<string, { stack: string; done: Promise<unknown> }>();

  async function removalsSettled(filter: (r: { stack: string }, id: string) => boolean): Promise<void> {
    const pending = [...removals.entries()].filter(([id, r]) => filter(r, id)).map(([, r]) => r.done);
    await Promise.allSettled(pending);
  }
  /**
   * Containers this runtime has seen carry the labels of a handle (it created them, found them by
   * label, or inspected them): `stop` then skips its ownership check, one engine round trip less
   * per service on the sequential path of a reverse-order `down`. A container id never comes back.
   */
  const verified = new Set<string>();
  const verifiedKey = (h: ServiceHandle) => `${h.id}\u0000${h.stack}\u0000${h.service}\u0000${h.replica}`;
  const owned = (h: ServiceHandle): ServiceHandle => {
    verified.add(verifiedKey(h));
    return h;
  };

  /**
   * Stack networks made sure of, by name. One creation per name at a time: Docker's duplicate
   * check is not atomic, so two parallel creates would make two networks with the same name.
   */
  const readyNetworks = new Map<string, Promise<void>>();

  /** The client, pinged once: every operation fails fast with UnreachableError when the engine is away. */
  const engine = engineClient(opts);
  const { docker, url, call } = engine;

  async function inspectOrUndefined(d: Dockerode, idOrName: string): Promise<Dockerode.ContainerInspectInfo | undefined> {
    try {
      return await d.getContainer(idOrName).inspect();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  function ensureNetwork(d: Dockerode, stack: string, name: string): Promise<void> {
    let ready = readyNetworks.get(name);
    if (!ready) {
      ready = createNetworkUnlessPresent(d, stack, name).catch((err: unknown) => {
        readyNetworks.delete(name);
        throw err;
      });
      readyNetworks.set(name, ready);
    }
    return ready;
  }

  async function createNetworkUnlessPresent(d: Dockerode, stack: string, name: string): Promise<void> {
    const existing = await d.listNetworks({ filters: { name: [name] } });
    // The name filter matches substrings; only an exact name counts.
    if (existing.some((n) => n.Name === name)) return;
    try {
      await d.createNetwork({ Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: { [LABELS.stack]: stack, [LABELS.network]: name } });
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // 409: another process created it meanwhile
    }
  }

  const runtime: Runtime = {
    name: 'docker',
    appliesRestartPolicy: true,

    async connect() {
      await docker().catch(() => undefined);
    },

    async prepare(stack, services, { signal }) {
      const own = services.filter((s) => s.runtime === 'docker').map((s) => (opts.pull ? { ...s, pull: opts.pull } : s));
      // Input problems first, all at once and before touching the engine (exit 2, not 1 or 3).
      const problems = own.flatMap(serviceProblems);
      if (problems.length > 0) throw new InvalidInputError(problems, 'cannot create containers');
      await call(`preparing stack '${stack}'`, async (d) => {
        // Images first: a missing image then fails `up` before anything was created.
        await ensureImages(d, own, { ...(signal ? { signal } : {}), ...(opts.onPullProgress ? { onPullProgress: opts.onPullProgress } : {}) });
        for (const network of stackNetworksFor(stack, own, opts.network)) {
          signal?.throwIfAborted();
          await ensureNetwork(d, stack, network);
        }
      });
    },

    async start(req) {
      const { stack, service } = req;
      return call(`starting service '${service.name}'`, async (d) => {
        const image = requireImage(service);
        const local = await localImage(d, image);
        if (local === undefined) {
          throw new StackFailedError(`image ${image} (service '${service.name}') is not present on the Docker engine`, {
            code: 'image_missing',
            path: `services.${service.name}.image`,
          });
        }
        const plan = planContainer({
          stack,
          service,
          replica: req.replica,
          environment: req.environment,
          files: req.files,
          configDir: req.configDir,
          profileDir: req.profileDir,
          fileDigests: await digestFiles(req),
          imageId: local.id,
          ...(local.healthcheck ? { imageHealthcheck: local.healthcheck } : {}),
          ...(opts.network ? { stackNetwork: opts.network } : {}),
        });

        for (const network of stackNetworksFor(stack, [service], opts.network)) await ensureNetwork(d, stack, network);

        await removalsSettled((r) => r.stack === stack); // a container being removed still holds its name
        const existing = await inspectOrUndefined(d, plan.name);
        if (existing) {
          const labels = existing.Config.Labels ?? {};
          if (labels[LABELS.stack] !== stack) {
            throw new StackFailedError(`container name ${plan.name} is taken by a container that is not part of stack '${stack}'`, {
              code: 'container_name_taken',
            });
          }
          if (labels[LABELS.configHash] === plan.configHash && existing.State.Running) return owned(handleOf(existing));
          // Changed or stopped: replace it, stopping the old one as gently as `down` would.
          const old = d.getContainer(existing.Id);
          if (existing.State.Running) await old.stop({ t: Math.ceil(service.stopGracePeriodMs / 1000) }).catch(() => undefined);
          await old.remove({ force: true, v: true });
        }

        const container = await d.createContainer(plan.options);
        try {
          await container.start();
          return owned(handleOf(await container.inspect()));
        } catch (err) {
          // Clean up, then rethrow: a failed start leaves nothing behind.
          await container.remove({ force: true, v: true }).catch(() => undefined);
          throw err;
        }
      });
    },

    async wait(handle) {
      // One controller per wait: many waits on one shared signal would pile listeners onto it.
      const cut = new AbortController();
      const closed = cut.signal;
      pendingWaits.add(cut);
      try {
        return await call(`waiting for service '${handle.service}'`, async (d) => {
          const container = d.getContainer(handle.id);
          for (;;) {
            let status: number | null = null;
            try {
              const result = (await container.wait({ condition: 'not-running', abortSignal: closed })) as { StatusCode?: number };
              status = result.StatusCode ?? null;
            } catch (err) {
              if (!isNotFound(err)) throw err;
            }
            const info = await inspectOrUndefined(d, handle.id);
            if (!info) return exitInfo(status);
            if (!info.State.Running && !info.State.Restarting) return exitInfo(info.State.ExitCode ?? status);
            // Docker restarted it (or is about to): the instance has not stopped for good.
            await realClock.sleep(RESTART_POLL_MS, closed);
          }
        });
      } catch (err) {
        if (closed.aborted) return new Promise<ExitInfo>(() => undefined);
        throw err;
      } finally {
        pendingWaits.delete(cut);
      }
    },

    async signal(handle, signal) {
      // A template's `changeMode: signal`: the init process forwards it to the service.
      await call(`signalling service '${handle.service}'`, (d) => d.getContainer(handle.id).kill({ signal }));
    },

    async stop(handle, stopOpts: StopOptions) {
      await call(`stopping service '${handle.service}'`, async (d) => {
        // The id comes from a state file anyone could have edited: stop and remove (with its
        // anonymous volumes) only a container that carries this stack's and service's labels.
        if (!verified.has(verifiedKey(handle))) {
          const existing = await inspectOrUndefined(d, handle.id);
          if (!existing) return;
          refuseForeign(existing, handle);
        }
        const container = d.getContainer(handle.id);
        // Docker sends the stop signal, then SIGKILL after `t` seconds; the init process forwards
        // the signal to the service. Engines before API 1.42 ignore `signal` and send the
        // container's StopSignal, which was set from the same `service.stopSignal` at create.
        try {
          await container.stop({ t: Math.ceil(stopOpts.gracePeriodMs / 1000), ...(stopOpts.signal ? { signal: stopOpts.signal } : {}) });
        } catch (err) {
          if (!isNotFound(err) && statusOf(err) !== 304) throw err; // 304: already stopped
        }
        const done = container.remove({ force: true, v: true }).then(
          () => undefined,
          (err: unknown) => {
            // 404: gone already; 409: removal already in progress (another `down`).
            if (!isNotFound(err) && statusOf(err) !== 409) throw engineError(err, `removing service '${handle.service}'`, url());
          },
        );
        const removal = { stack: handle.stack, done };
        removals.set(handle.id, removal);
        done.then(
          () => removals.get(handle.id) === removal && removals.delete(handle.id),
          () => undefined, // kept, so that teardown reports it
        );
      });
    },

    async inspect(handle): Promise<InstanceStatus> {
      await removalsSettled((_r, id) => id === handle.id);
      return call(`inspecting service '${handle.service}'`, async (d) => {
        const info = await inspectOrUndefined(d, handle.id);
        if (!info || !isOwnContainer(info, handle)) return { running: false }; // not ours: not our instance
        owned(handle);
        const running = info.State.Running && !info.State.Restarting;
        return {
          running,
          ...(running ? {} : { exit: exitInfo(info.State.ExitCode ?? null) }),
          health: healthOf(info),
        };
      });
    },

    logs(handle, logOpts: LogOptions) {
      return followLogs(handle, logOpts);
    },

    async discover(stack) {
      await removalsSettled((r) => r.stack === stack);
      return call(`listing containers of stack '${stack}'`, async (d) => {
        const listed = await d.listContainers({ all: true, filters: { label: [stackLabelFilter(stack)] } });
        const infos = await Promise.all(listed.map((c) => inspectOrUndefined(d, c.Id)));
        const handles = infos.filter((i): i is Dockerode.ContainerInspectInfo => i !== undefined).map((i) => owned(handleOf(i)));
        return handles.sort((a, b) => a.service.localeCompare(b.service) || a.replica - b.replica);
      });
    },

    async teardown(stack) {
      // Containers still being removed hold on to the stack's networks.
      const mine = [...removals.entries()].filter(([, r]) => r.stack === stack);
      const failures = (await Promise.allSettled(mine.map(([, r]) => r.done))).flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      for (const [id] of mine) removals.delete(id);
      if (failures.length > 0) throw failures[0];
      await call(`removing networks of stack '${stack}'`, async (d) => {
        const networks = await d.listNetworks({ filters: { label: [stackLabelFilter(stack)] } });
        for (const n of networks) {
          readyNetworks.delete(n.Name);
          try {
            await d.getNetwork(n.Id).remove();
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
      });
    },

    endpoint(handle, port) {
      return handle.publishedPorts?.[String(port)] ?? { host: '127.0.0.1', port };
    },

    async close() {
      // Removals must end before we go: a process that exits now would leave stopped containers.
      await removalsSettled(() => true);
      removals.clear();
      for (const cut of pendingWaits) cut.abort();
      pendingWaits.clear();
      for (const s of openStreams) (s as NodeJS.ReadableStream & { destroy?(): void }).destroy?.();
      openStreams.clear();
      readyNetworks.clear();
      engine.reset();
    },
  };

  async function* followLogs(handle: ServiceHandle, logOpts: LogOptions): AsyncGenerator<string> {
    const d = await docker();
    const base = {
      stdout: true,
      stderr: true,
      ...(logOpts.tail !== undefined ? { tail: logOpts.tail } : {}),
      ...(logOpts.signal ? { abortSignal: logOpts.signal } : {}),
    };
    let source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;
    let stream: NodeJS.ReadableStream | undefined;
    try {
      if (logOpts.follow) {
        stream = await d.getContainer(handle.id).logs({ ...base, follow: true });
        openStreams.add(stream);
        source = stream as AsyncIterable<Uint8Array>;
      } else {
        source = [await d.getContainer(handle.id).logs({ ...base, follow: false })];
      }
    } catch (err) {
      if (logOpts.signal?.aborted) return;
      throw engineError(err, `reading logs of service '${handle.service}'`, url());
    }
    try {
      yield* demuxLines(source);
    } catch (err) {
      // Aborting or closing ends the stream early; that is how following stops, not a failure.
      if (logOpts.signal?.aborted || (stream && !openStreams.has(stream))) return;
      throw engineError(err, `reading logs of service '${handle.service}'`, url());
    } finally {
      if (stream) {
        openStreams.delete(stream);
        (stream as NodeJS.ReadableStream & { destroy?(): void }).destroy?.();
      }
    }
  }

  return runtime;
}

/** Whether a container carries the labels of the handle's stack, service and replica. */
function isOwnContainer(info: Dockerode.ContainerInspectInfo, handle: ServiceHandle): boolean {
  const labels = info.Config.Labels ?? {};
  return labels[LABELS.stack] === handle.stack && labels[LABELS.service] === handle.service && (labels[LABELS.replica] ?? '0') === String(handle.replica);
}

function refuseForeign(info: Dockerode.ContainerInspectInfo, handle: ServiceHandle): void {
  if (isOwnContainer(info, handle)) return;
  const labels = info.Config.Labels ?? {};
  const owner = labels[LABELS.stack] ? `stack '${labels[LABELS.stack]}'` : 'no stack';
  throw new StackFailedError(
    `not stopping container ${info.Name.replace(/^\//, '')} (${info.Id.slice(0, 12)}) for '${handle.service}' of stack '${handle.stack}': it belongs to ${owner}`,
    { code: 'not_ours' },
  );
}

function serviceProblems(service: ServiceSpec): Problem[] {
  const problems: Problem[] = [];
  if (!service.image) {
    problems.push({
      code: 'missing_image',
      path: `services.${service.name}.image`,
      message: `service '${service.name}' has no image (the docker runtime needs one)`,
    });
  }
  if (!isDockerSignal(service.stopSignal)) {
    problems.push({ code: 'invalid_signal', path: `services.${service.name}.stopSignal`, message: `unknown stop signal '${service.stopSignal}'` });
  }
  return problems;
}

/** Docker accepts `SIGTERM`, `TERM` or a number. */
function isDockerSignal(name: string): boolean {
  if (/^\d+$/.test(name)) return Number(name) > 0 && Number(name) < 65;
  const full = name.toUpperCase().startsWith('SIG') ? name.toUpperCase() : `SIG${name.toUpperCase()}`;
  return full in os.constants.signals;
}

function requireImage(service: ServiceSpec): string {
  if (!service.image) {
    throw new StackFailedError(`service '${service.name}' has no image (the docker runtime needs one)`, {
      code: 'image_missing',
      path: `services.${service.name}.image`,
    });
  }
  return service.image;
}

/** Contents (and mode) of every rendered file, so a changed config recreates the container. */
async function digestFiles(req: StartRequest): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const f of req.files) digests[f.destination] = `${f.mode.toString(8)}:${sha256(await renderedContent(f))}`;
  return digests;
}
