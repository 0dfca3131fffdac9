/**
 * `stack discovery ls | watch | register | deregister | test`: the profile's discovery backends,
 * by hand. Backends (and their client libraries) load only here, never for offline commands.
 */
import { ExitCode, InterruptedError, UsageError } from '../../errors.js';
import type { DiscoveryManager } from '../../discovery/manager.js';
import type { ServiceInstance } from '../../discovery/types.js';
import { loadProfile } from '../../profile/load.js';
import type { DiscoveryConfig } from '../../profile/types.js';
import { parseDuration } from '../../util/duration.js';
import { dnsLabelProblem } from '../../util/names.js';
import { profileRef, type CommonOptions } from '../common.js';
import { clean, pad, paint, type Output } from '../output.js';

async function withDiscovery<T>(opts: CommonOptions, o: Output, use: (m: DiscoveryManager, config: DiscoveryConfig) => Promise<T>): Promise<T> {
  const profile = loadProfile(profileRef(opts, o));
  const { createDiscovery } = await import('../../discovery/index.js');
  const manager = await createDiscovery(profile.discovery, {
    onEvent: (e) => {
      if (!opts.json) o.err(paint(o, 'yellow', `discovery ${e.type} (${e.backend}${e.service ? `, ${clean(e.service)}` : ''}): ${clean(e.message)}`));
    },
  });
  try {
    return await use(manager, profile.discovery);
  } finally {
    await manager.close();
  }
}

function checkName(what: string, name: string): void {
  const problem = dnsLabelProblem(name);
  if (problem) throw new UsageError(`${what} '${name}' ${problem}; names must be DNS labels (a-z, 0-9, -)`);
}

function table(o: Output, instances: readonly ServiceInstance[]): void {
  if (instances.length === 0) {
    o.out(paint(o, 'gray', 'no instances registered'));
    return;
  }
  // Every field came from the backend, which anyone who can write to it controls: escaped.
  const rows = instances.map((i) =>
    [i.service, i.id, i.port === undefined ? i.address : `${i.address}:${i.port}`, i.url ?? '', i.tags.join(','), i.expiresAt ?? ''].map(clean),
  );
  const head = ['SERVICE', 'ID', 'ADDRESS', 'URL', 'TAGS', 'EXPIRES'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)) + 2);
  o.out(
    paint(
      o,
      'bold',
      head
        .map((h, c) => pad(h, widths[c]!))
        .join('')
        .trimEnd(),
    ),
  );
  for (const r of rows)
    o.out(
      r
        .map((v, c) => pad(v, widths[c]!))
        .join('')
        .trimEnd(),
    );
}

export async function ls(opts: CommonOptions, o: Output, args: string[]): Promise<number> {
  const service = args[0];
  if (service) checkName('service', service);
  return withDiscovery(opts, o, async (m) => {
    const instances = service ? await m.lookup(service) : await m.list();
    if (opts.json) o.json(instances);
    else table(o, instances);
    return ExitCode.ok;
  });
}

export async function watch(opts: CommonOptions, o: Output, args: string[]): Promise<number> {
  const service = args[0] ?? '';
  checkName('service', service);
  const stop = new AbortController();
  let signalName: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalName = sig;
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Backends keep no handle that holds the event loop open (a library must not keep its host
  // alive); the command does, until it is interrupted.
  const holdOpen = setInterval(() => undefined, 1 << 30);
  try {
    await withDiscovery(opts, o, async (m) => {
      let previous = new Map<string, ServiceInstance>();
      for await (const list of m.watch(service, { signal: stop.signal })) {
        const current = new Map(list.map((i) => [i.id, i]));
        if (opts.json) {
          o.out(JSON.stringify({ at: new Date().toISOString(), service, instances: list }));
        } else {
          const time = new Date().toISOString().slice(11, 23);
          const added = list.filter((i) => !previous.has(i.id)).map((i) => paint(o, 'green', `+${clean(i.id)}`));
          const removed = [...previous.keys()].filter((id) => !current.has(id)).map((id) => paint(o, 'red', `-${clean(id)}`));
          const where = list.map((i) => clean(`${i.id}@${i.address}${i.port === undefined ? '' : `:${i.port}`}`)).join(', ');
          o.out(
            `${time} ${service}: ${list.length} instance${list.length === 1 ? '' : 's'}${[...added, ...removed].length ? ` (${[...added, ...removed].join(' ')})` : ''}${where ? ` — ${where}` : ''}`,
          );
        }
        previous = current;
      }
    });
  } finally {
    clearInterval(holdOpen);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (signalName) throw new InterruptedError(signalName);
  return ExitCode.ok;
}

interface RegisterOptions extends CommonOptions {
  address?: string;
  port?: string;
  id?: string;
  url?: string;
  tag?: string[];
  ttl?: string;
  dryRun?: boolean;
}

export async function register(opts: RegisterOptions, o: Output, args: string[]): Promise<number> {
  const service = args[0] ?? '';
  checkName('service', service);
  if (!opts.address) throw new UsageError('--address is required');
  const id = opts.id ?? `${service}-manual`;
  const port = opts.port === undefined ? undefined : Number(opts.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new UsageError(`--port must be 1–65535, got '${opts.port}'`);
  if (opts.url !== undefined && !URL.canParse(opts.url)) throw new UsageError(`--url '${opts.url}' is not a URL`);
  for (const tag of opts.tag ?? []) checkName('tag', tag);
  const ttlMs = opts.ttl === undefined ? undefined : parseDuration(opts.ttl);
  if (opts.ttl !== undefined && ttlMs === undefined) throw new UsageError(`--ttl '${opts.ttl}' is not a duration (30s, 5m, 1h)`);
  const input = { id, service, address: opts.address, ...(port !== undefined ? { port } : {}), ...(opts.url ? { url: opts.url } : {}), tags: opts.tag ?? [] };
  if (opts.dryRun) {
    if (opts.json) o.json({ dryRun: true, register: input });
    else o.out(`would register ${service}/${clean(id)} at ${clean(opts.address)}${port ? `:${port}` : ''}`);
    return ExitCode.ok;
  }
  return withDiscovery(opts, o, async (m, config) => {
    const record = await m.register(input, { ttlMs: ttlMs ?? config.ttlMs });
    if (opts.json) o.json(record);
    else
      o.out(`registered ${service}/${clean(id)}${record.expiresAt ? ` (expires ${clean(record.expiresAt)} unless heartbeated; --ttl sets the lifetime)` : ''}`);
    return ExitCode.ok;
  });
}

export async function deregister(opts: CommonOptions & { dryRun?: boolean }, o: Output, args: string[]): Promise<number> {
  const [service = '', id = ''] = args;
  checkName('service', service);
  if (opts.dryRun) {
    if (opts.json) o.json({ dryRun: true, deregister: { service, id } });
    else o.out(`would deregister ${service}/${clean(id)}`);
    return ExitCode.ok;
  }
  return withDiscovery(opts, o, async (m) => {
    await m.deregister(service, id);
    if (opts.json) o.json({ deregistered: { service, id } });
    else o.out(`deregistered ${service}/${clean(id)}`);
    return ExitCode.ok;
  });
}

export async function test(opts: CommonOptions, o: Output): Promise<number> {
  return withDiscovery(opts, o, async (m) => {
    const checks = await m.checkEach();
    const results = checks.map((c) => ({ backend: c.backend, ok: c.ok, ...(c.error ? { error: c.error.message } : {}) }));
    if (opts.json) o.json({ ok: checks.every((c) => c.ok), backends: results });
    else
      for (const r of results)
        o.out(
          r.ok
            ? `${paint(o, 'green', '✓')} ${r.backend}: reachable${m.backends.find((b) => b.name === r.backend)?.capabilities.register ? ' and writable' : ' (read-only)'}`
            : `${paint(o, 'red', '✗')} ${r.backend}: ${clean(r.error)}`,
        );
    return checks.every((c) => c.ok) ? ExitCode.ok : ExitCode.unreachable;
  });
}
