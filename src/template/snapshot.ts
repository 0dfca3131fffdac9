/**
 * `--discovery-snapshot FILE`: service records standing in for live discovery, so configs render
 * offline (CI) exactly as they would against a running stack.
 *
 * Accepted shapes (JSON or YAML): a list of records; `{ instances: [...] }` (what
 * `stack discovery ls --json` prints); or a mapping of service name to a record or a list of them.
 * A record needs `service` (implied by the mapping key) and `address` (or `host`, or a `url` to take
 * it from); `port`, `url`, `id`, `tags`, `meta` are optional.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Problem } from '../errors.js';
import type { ServiceInstance } from '../discovery/types.js';
import { formatPath, parseProfileText, type PathSegment } from '../profile/source.js';
import { displayPath } from './locate.js';

export function readDiscoverySnapshot(file: string, cwd = process.cwd()): { instances: ServiceInstance[]; problems: Problem[] } {
  const abs = path.resolve(cwd, file);
  const display = displayPath(abs, cwd);
  const problems: Problem[] = [];
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    return {
      instances: [],
      problems: [{ code: 'read_error', severity: 'error', file: display, message: `cannot read the discovery snapshot: ${(err as Error).message}` }],
    };
  }
  const parsed = parseProfileText(text, display);
  if (parsed.problems.length > 0) return { instances: [], problems: parsed.problems.map((p) => ({ ...p, severity: 'error' as const })) };

  const records: { value: unknown; at: PathSegment[]; service?: string }[] = [];
  const v = parsed.value;
  if (Array.isArray(v)) v.forEach((r, i) => records.push({ value: r, at: [i] }));
  else if (isObject(v) && Array.isArray(v.instances)) v.instances.forEach((r, i) => records.push({ value: r, at: ['instances', i] }));
  else if (isObject(v)) {
    for (const [service, entry] of Object.entries(v)) {
      if (Array.isArray(entry)) entry.forEach((r, i) => records.push({ value: r, at: [service, i], service }));
      else records.push({ value: entry, at: [service], service });
    }
  } else {
    problems.push({
      code: 'invalid_snapshot',
      severity: 'error',
      file: display,
      line: 1,
      column: 1,
      message: 'a discovery snapshot is a list of service records (or a mapping of service names to records)',
    });
  }

  const instances: ServiceInstance[] = [];
  const counts = new Map<string, number>();
  for (const { value, at, service: implied } of records) {
    const fail = (message: string, sub: PathSegment[] = []) =>
      problems.push({ code: 'invalid_snapshot', severity: 'error', ...parsed.locate([...at, ...sub]), path: formatPath([...at, ...sub]), message });
    if (!isObject(value)) {
      fail('a service record must be a mapping (service, address, port, …)');
      continue;
    }
    const service = typeof value.service === 'string' ? value.service : typeof value.role === 'string' ? value.role : implied;
    if (!service) {
      fail('a service record needs `service`');
      continue;
    }
    const url = typeof value.url === 'string' ? value.url : undefined;
    let address = typeof value.address === 'string' ? value.address : typeof value.host === 'string' ? value.host : undefined;
    let port = typeof value.port === 'number' ? value.port : typeof value.port === 'string' && /^\d+$/.test(value.port) ? Number(value.port) : undefined;
    if (value.port !== undefined && port === undefined) fail('`port` must be a number', ['port']);
    if (url && (!address || port === undefined)) {
      try {
        const u = new URL(url);
        address ??= u.hostname.replace(/^\[|\]$/g, '');
        if (port === undefined && u.port) port = Number(u.port);
      } catch {
        fail('`url` is not a URL', ['url']);
      }
    }
    if (!address) {
      fail('a service record needs `address` (or `host`, or `url`)');
      continue;
    }
    const n = (counts.get(service) ?? 0) + 1;
    counts.set(service, n);
    instances.push({
      id: typeof value.id === 'string' ? value.id : `${service}-${n}`,
      service,
      address,
      ...(port !== undefined ? { port } : {}),
      ...(url ? { url } : {}),
      tags: Array.isArray(value.tags) ? value.tags.map(String) : [],
      meta: isObject(value.meta) ? Object.fromEntries(Object.entries(value.meta).map(([k, m]) => [k, String(m)])) : {},
      registeredAt: typeof value.registeredAt === 'string' ? value.registeredAt : '',
    });
  }
  return { instances, problems };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
