/**
 * The pure mapping of the swarm runtime (no cluster): profile service → Swarm service spec,
 * check → HEALTHCHECK, rendered file → config or secret, task list → readiness and placements.
 */
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { HealthCheckSpec } from '../../src/profile/types.js';
import { healthcheckOf, planSwarmService, swarmFile, swarmServiceProblems } from '../../src/runtime/swarm-spec.js';
import { readiness, taskInstances, type SwarmTask } from '../../src/runtime/swarm-tasks.js';
import { busyboxService } from '../fixtures/docker-image.js';
import { PROD_CLUSTER_ENV } from '../helpers/prod-cluster.js';
import { inspectProfile, loadProfile } from '../../src/profile/load.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const http = (extra: Partial<HealthCheckSpec> = {}): HealthCheckSpec =>
  ({ strategy: 'http', endpoint: '/health', intervalMs: 500, timeoutMs: 2000, retries: 3, startPeriodMs: 10_000, ...extra }) as HealthCheckSpec;

const service = (overrides: Parameters<typeof busyboxService>[0] = {}) =>
  busyboxService({ runtime: 'swarm', port: 8080, ports: [{ container: 8080, host: 18080, hostIp: '127.0.0.1', protocol: 'tcp' }], ...overrides });

describe('swarm service spec', () => {
  it('turns an http check into a busybox wget HEALTHCHECK and a tcp check into nc, with the check timing', () => {
    const hc = healthcheckOf(service({ healthCheck: http() }), {});
    expect(hc).toEqual({
      Test: ['CMD', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/health'],
      Interval: 500e6,
      Timeout: 2000e6,
      Retries: 3,
      StartPeriod: 10_000e6,
    });
    expect(healthcheckOf(service({ healthCheck: { ...http(), strategy: 'tcp' } as HealthCheckSpec }), {})?.Test).toEqual([
      'CMD',
      'nc',
      '-z',
      '127.0.0.1',
      '8080',
    ]);
    expect(healthcheckOf(service({ healthCheck: http() }), { healthcheck: 'pg_isready -q' })?.Test).toEqual(['CMD-SHELL', 'pg_isready -q']);
    expect(healthcheckOf(service(), {})).toBeUndefined();
  });

  it('names the service <stack>_<service>, dnsrr and host-mode ports by default, placement and update settings as given', () => {
    const plan = planSwarmService({
      stack: 'st',
      service: service({ replicas: 3 }),
      environment: { B: '2', A: '1' },
      files: [],
      objectIds: {},
      settings: {
        services: {
          web: { placement: { constraints: ['node.labels.tier==db'], preferences: ['spread=node.id'] }, update: { order: 'start-first', delay: '2s' } },
        },
      },
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a deep look into dockerode's loosely typed spec
    const spec = plan.spec as unknown as Record<string, any>;
    expect(spec.Name).toBe('st_web');
    expect(spec.Labels).toMatchObject({
      'io.atproto-stacks.stack': 'st',
      'io.atproto-stacks.service': 'web',
      'io.atproto-stacks.config-hash': plan.configHash,
    });
    expect(spec.EndpointSpec).toEqual({ Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: 8080, PublishedPort: 18080, PublishMode: 'host' }] });
    expect(spec.Mode).toEqual({ Replicated: { Replicas: 3 } });
    expect(spec.TaskTemplate.Placement).toEqual({ Constraints: ['node.labels.tier==db'], Preferences: [{ Spread: { SpreadDescriptor: 'node.id' } }] });
    expect(spec.TaskTemplate.Networks).toEqual([{ Target: 'st_default', Aliases: ['web'] }]);
    expect(spec.TaskTemplate.ContainerSpec.Env).toEqual(['A=1', 'B=2']);
    expect(spec.UpdateConfig).toMatchObject({ Order: 'start-first', Delay: 2000e6, FailureAction: 'rollback' });
  });

  it('changes the config hash with the environment and with a file’s contents, not otherwise', () => {
    const base = { stack: 'st', service: service(), environment: { A: '1' }, objectIds: {}, settings: {} };
    const file = (text: string) => swarmFile('st', 'web', 'app.conf', 0o644, Buffer.from(text));
    const one = planSwarmService({ ...base, files: [file('x')] }).configHash;
    expect(planSwarmService({ ...base, files: [file('x')] }).configHash).toBe(one);
    expect(planSwarmService({ ...base, files: [file('y')] }).configHash).not.toBe(one);
    expect(planSwarmService({ ...base, environment: { A: '2' }, files: [file('x')] }).configHash).not.toBe(one);
  });

  it('makes a 0600 file a secret and anything else a config, mounted under /etc/stack, named by content', () => {
    const secret = swarmFile('st', 'web', 'keys/token.env', 0o600, Buffer.from('TOKEN=x'));
    const config = swarmFile('st', 'web', 'app.conf', 0o644, Buffer.from('a=1'));
    expect(secret).toMatchObject({ secret: true, target: '/etc/stack/keys/token.env' });
    expect(config).toMatchObject({ secret: false, target: '/etc/stack/app.conf' });
    expect(swarmFile('st', 'web', 'app.conf', 0o644, Buffer.from('a=2')).name).not.toBe(config.name);
    expect(config.name.length).toBeLessThanOrEqual(64);
  });

  it('reports every check that cannot run inside a task, with its path', () => {
    const problems = [
      ...swarmServiceProblems(service({ name: 'a', healthCheck: { ...http(), strategy: 'command', command: ['true'] } as HealthCheckSpec }), {}),
      ...swarmServiceProblems(service({ name: 'b', healthCheck: http({ scheme: 'https' } as Partial<HealthCheckSpec>) }), {}),
      ...swarmServiceProblems(service({ name: 'c', network: 'host' }), {}),
      ...swarmServiceProblems(service({ name: 'd', image: undefined as unknown as string }), {}),
    ];
    expect(problems.map((p) => p.path)).toEqual(['services.a.healthCheck.strategy', 'services.b.healthCheck', 'services.c.network', 'services.d.image']);
    expect(
      swarmServiceProblems(service({ name: 'e', healthCheck: { ...http(), strategy: 'command' } as HealthCheckSpec }), {
        services: { e: { healthcheck: ['true'] } },
      }),
    ).toEqual([]);
  });
});

describe('swarm readiness', () => {
  const info = (replicas: number, update?: string) =>
    ({
      Spec: { Mode: { Replicated: { Replicas: replicas } } },
      ...(update ? { UpdateStatus: { State: update, Message: 'update rolled back due to failure' } } : {}),
    }) as unknown as Dockerode.Service;
  const task = (state: string, desired = 'running', createdAt = '2026-01-01T00:00:10Z', err?: string): SwarmTask => ({
    ID: Math.random().toString(36),
    DesiredState: desired,
    CreatedAt: createdAt,
    Status: { State: state, ...(err ? { Err: err } : {}) },
  });

  it('is ready only when every desired task runs and no update is in flight', () => {
    expect(readiness(info(2), [task('running'), task('starting')], 0).ready).toBe(false);
    expect(readiness(info(2), [task('running'), task('running'), task('shutdown', 'shutdown')], 0).ready).toBe(true);
    expect(readiness(info(2, 'updating'), [task('running'), task('running')], 0).ready).toBe(false);
  });

  it('fails on a rolled-back update and counts failed tasks since the start', () => {
    expect(readiness(info(1, 'rollback_completed'), [task('running')], 0).failed).toMatch(/rollback completed/);
    const since = Date.parse('2026-01-01T00:00:05Z');
    const r = readiness(
      info(1),
      [task('failed', 'shutdown', '2026-01-01T00:00:06Z', 'task: non-zero exit (7)'), task('failed', 'shutdown', '2026-01-01T00:00:01Z'), task('starting')],
      since,
    );
    expect(r).toMatchObject({ ready: false, failures: 1, lastError: 'task: non-zero exit (7)' });
  });
});

describe('swarm placements (what discovery registers)', () => {
  const nodes = new Map([
    ['n1', { name: 'node-1', address: '10.0.0.11', state: 'ready' }],
    ['n2', { name: 'node-2', address: '10.0.0.12', state: 'ready' }],
    ['n3', { name: 'node-3', address: '10.0.0.13', state: 'down' }],
  ]);
  const task = (id: string, slot: number, node: string, state = 'running', published?: number, createdAt = '2026-01-01T00:00:10Z'): SwarmTask => ({
    ID: id,
    Slot: slot,
    NodeID: node,
    DesiredState: state === 'shutdown' ? 'shutdown' : 'running',
    CreatedAt: createdAt,
    Status: { State: state, ...(published ? { PortStatus: { Ports: [{ TargetPort: 8080, PublishedPort: published }] } } : {}) },
    NetworksAttachments: [{ Network: { Spec: { Name: 's_default' } }, Addresses: [`10.1.0.${slot}/24`] }],
  });
  const web = { name: 'web', port: 8080 };

  it('is each running task on a node that is up, at its node address and published port, one per slot (the newest)', () => {
    const tasks = [
      task('a', 1, 'n1', 'running', 30001),
      task('b', 2, 'n3', 'running', 30001), // its node is down
      task('c', 2, 'n2', 'running', 30002, '2026-01-01T00:00:20Z'),
      task('d', 3, 'n2', 'starting', 30003),
      task('e', 1, 'n2', 'running', 30009, '2026-01-01T00:00:01Z'), // an older task of slot 1
    ];
    expect(taskInstances(tasks, nodes, web, 's_default')).toEqual([
      {
        key: '1',
        address: '10.0.0.11',
        port: 30001,
        url: 'http://10.0.0.11:30001',
        meta: { node: 'node-1', slot: '1', task: 'a', taskAddress: '10.1.0.1', overlay: 'web', overlayUrl: 'http://web:8080' },
      },
      expect.objectContaining({ key: '2', address: '10.0.0.12', port: 30002, meta: expect.objectContaining({ node: 'node-2', task: 'c' }) }),
    ]);
  });

  it('is the overlay name and container port for a port that is not published', () => {
    expect(taskInstances([task('a', 1, 'n1'), task('b', 2, 'n2')], nodes, { ...web, scheme: 'https' }, 's_default')).toEqual([
      expect.objectContaining({ key: '1', address: 'web', port: 8080, url: 'https://web:8080', meta: expect.objectContaining({ taskAddress: '10.1.0.1' }) }),
      expect.objectContaining({ key: '2', address: 'web', port: 8080, url: 'https://web:8080', meta: expect.objectContaining({ node: 'node-2' }) }),
    ]);
  });
});

describe('the prod-cluster-swarm profile', () => {
  it('runs every service of prod-cluster on swarm, by DNS name, with nothing the swarm runtime refuses', () => {
    const p = loadProfile('prod-cluster-swarm', { env: {} });
    const services = Object.values(p.services);
    expect(services.map((s) => s.name).sort()).toEqual(Object.keys(loadProfile('prod-cluster', { env: { ...PROD_CLUSTER_ENV } }).services).sort());
    for (const s of services) {
      expect(s.runtime, s.name).toBe('swarm');
      expect(s.address, s.name).toBe(s.name);
      expect(swarmServiceProblems(s, p.swarm), s.name).toEqual([]);
    }
    expect(p.swarm.services?.postgres?.placement?.constraints).toEqual(['node.labels.tier==db']);
  });
});

describe('validation of swarm services', () => {
  it('reports the swarm runtime’s problems with the other rules, at their place in the file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'swarm-validate-'));
    try {
      const file = path.join(dir, 'stack.yaml');
      writeFileSync(
        file,
        'name: v\nruntime: swarm\nservices:\n  a:\n    image: busybox\n    port: 8080\n    healthCheck: { strategy: file, path: /tmp/x }\n  b:\n    image: busybox\n    network: host\n',
      );
      const problems = inspectProfile(file, { env: {} }).problems.filter((p) => p.severity !== 'warning');
      expect(problems.map((p) => [p.path, p.line])).toEqual([
        ['services.a.healthCheck.strategy', 7],
        ['services.b.network', 10],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
