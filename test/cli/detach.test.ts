/**
 * `stack up --detach` leaves a supervisor behind: the stack stays registered past its discovery
 * TTL, crashed services are restarted, `down` stops supervisor and services, a `kill -9`'d
 * supervisor leaves the services to `down`, a failed start leaves nothing, and a re-`up` hands
 * the stack over to exactly one new supervisor.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { survivors } from '../engine/helpers.js';
import { freePort, waitFor } from '../helpers/net.js';
import { healthyPids, runStack, stackProcessesIn, StackProcess, supervisorPid, useStackFolders, webService, type CliResult } from './helpers.js';

const TTL_MS = 2000;

/** Stack folders whose file discovery registrations live 2 s without heartbeats (every 500 ms). */
const { stackFolder } = useStackFolders({
  prefix: 'stack-detach-',
  name: 'detach-test',
  dependencyTimeout: '30s',
  discovery: { ttl: `${TTL_MS}ms`, heartbeatInterval: '500ms' },
});

const web = (port: number, extra: Record<string, unknown> = {}, env: Record<string, string> = {}) => webService(port, env, extra);

interface StatusView {
  owner?: { pid: number; alive: boolean; detached?: boolean };
  services: { name: string; state: string; running: boolean; restarts: number; handle?: { pid?: number } }[];
}
async function status(dir: string): Promise<StatusView> {
  return JSON.parse((await runStack(['status', '--json'], dir)).stdout) as StatusView;
}

interface Registration {
  id: string;
  expiresAt?: string;
}
/** Live registrations of `service`, as `stack discovery ls` sees them (expired ones are not). */
async function registrations(dir: string, service: string): Promise<Registration[]> {
  const r = await runStack(['discovery', 'ls', service, '--json'], dir);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Registration[];
}

/** Wait until more than one TTL has passed since `since` (a registration's first expiry). */
async function pastOneTtl(since: string | undefined): Promise<void> {
  const until = Date.parse(since ?? new Date().toISOString()) + 500;
  await waitFor(() => Date.now() > until, TTL_MS * 3, 'one TTL to pass');
}

/** Rewrite the folder's stack.json with `services` (and `variables`), keeping its other settings. */
async function writeStack(dir: string, services: Record<string, unknown>, variables?: Record<string, unknown>): Promise<void> {
  const file = path.join(dir, 'stack.json');
  const profile = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  await writeFile(file, JSON.stringify({ ...profile, services, ...(variables ? { variables } : {}) }, null, 2));
}

async function upDetached(dir: string, pids: number[]): Promise<{ result: CliResult; supervisor: number; services: Record<string, number> }> {
  const result = await runStack(['up', '--detach', '--json'], dir);
  expect(result.code, result.stderr).toBe(0);
  const supervisor = supervisorPid(result.stdout)!;
  const services = healthyPids(result);
  pids.push(supervisor, ...Object.values(services));
  return { result, supervisor, services };
}

describe('up --detach: a supervisor keeps the stack', () => {
  it('keeps registrations alive past their TTL, restarts a killed service, shows itself in status; down stops it and the services', async () => {
    const port = await freePort();
    const { dir, pids } = await stackFolder({ web: web(port, { restart: { policy: 'on-failure', backoff: '100ms' } }) });
    const { supervisor, services } = await upDetached(dir, pids);
    expect(survivors([supervisor])).toEqual([supervisor]);

    const view = await status(dir);
    expect(view.owner).toEqual({ pid: supervisor, alive: true, detached: true });

    // (a) Heartbeats: still registered after more than one TTL.
    const [first] = await registrations(dir, 'web');
    expect(first?.id).toBe('detach-test-web-0');
    await pastOneTtl(first?.expiresAt);
    const [renewed] = await registrations(dir, 'web');
    expect(renewed?.id).toBe('detach-test-web-0');
    expect(Date.parse(renewed!.expiresAt!)).toBeGreaterThan(Date.parse(first!.expiresAt!));

    // (b) The restart policy: a service killed with SIGKILL comes back under a new pid.
    process.kill(services.web!, 'SIGKILL');
    const restarted = await waitFor(
      async () => {
        const s = (await status(dir)).services.find((x) => x.name === 'web');
        return s && s.restarts === 1 && s.state === 'healthy' && s.running ? s : undefined;
      },
      20_000,
      'web to be restarted',
    );
    const newPid = restarted.handle!.pid!;
    pids.push(newPid);
    expect(newPid).not.toBe(services.web);
    expect(await registrations(dir, 'web')).toHaveLength(1);

    // (c) down stops the supervisor, which stops and deregisters its services.
    const down = await runStack(['down'], dir);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`asked the running \`stack up\` (pid ${supervisor}) to stop; it did`);
    expect(survivors(pids)).toEqual([]);
    expect(stackProcessesIn(dir)).toEqual([]);
    expect(await registrations(dir, 'web')).toEqual([]);
  });

  it('(d) kill -9 of the supervisor: services run on, registrations expire after one TTL, down still cleans up', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({ db: web(pa), api: web(pb, { dependencies: ['db'] }) });
    const { supervisor, services } = await upDetached(dir, pids);
    const [registered] = await registrations(dir, 'api');
    expect(registered).toBeDefined();

    process.kill(supervisor, 'SIGKILL');
    await waitFor(() => survivors([supervisor]).length === 0, 10_000, 'the supervisor to die');
    expect(survivors(Object.values(services)).sort()).toEqual(Object.values(services).sort());

    await pastOneTtl(registered?.expiresAt);
    expect(await registrations(dir, 'api')).toEqual([]);
    expect(await registrations(dir, 'db')).toEqual([]);
    const view = await status(dir);
    expect(view.owner).toEqual({ pid: supervisor, alive: false });
    expect(view.services.map((s) => [s.name, s.running])).toEqual([
      ['api', true],
      ['db', true],
    ]);

    const down = await runStack(['down'], dir);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain("stack 'detach-test' is down");
    expect(survivors(pids)).toEqual([]);
  });

  it('(e) a stack that fails to start exits 1 and leaves nothing running, supervisor included', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({
      broken: { command: [process.execPath, '-e', 'process.exit(3)'], healthCheck: { strategy: 'tcp', port: pa } },
      fine: web(pb),
      dependent: { command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], dependencies: ['broken', 'fine'] },
    });
    const up = await runStack(['up', '--detach'], dir);
    expect(up.code).toBe(1);
    expect(up.stdout).toMatch(/fine: healthy/);
    expect(up.stderr).toContain('failed: broken — exited with code 3 before it became healthy');
    expect(up.stderr).toContain('blocked: dependent');
    expect(up.stderr).toContain('what had started was stopped again (--on-failure rollback)');
    expect(up.stdout).not.toContain('supervised by pid');
    const log = await readFile(path.join(dir, '.stack', 'detach-test', 'supervisor.log'), 'utf8');
    const logged = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { pid?: number });
    pids.push(...new Set(logged.flatMap((e) => (e.pid !== undefined ? [e.pid] : []))));
    expect(pids.length).toBeGreaterThan(0);
    expect(survivors(pids)).toEqual([]);
    expect(stackProcessesIn(dir)).toEqual([]);
    expect((await runStack(['status'], dir)).stdout).toContain('nothing is running');
  });

  it('(f) up --detach of a running detached stack converges and leaves exactly one supervisor, which heartbeats', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({ db: web(pa), api: web(pb, { dependencies: ['db'] }) });
    const first = await upDetached(dir, pids);
    const second = await upDetached(dir, pids);
    expect(second.supervisor).not.toBe(first.supervisor);
    expect(second.services).toEqual(first.services); // unchanged: the same pids
    const events = second.result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events).toContainEqual(expect.objectContaining({ type: 'state', service: 'api', state: 'healthy', reason: 'unchanged' }));

    // The first supervisor let go and exited; the services did not notice.
    expect(survivors([first.supervisor])).toEqual([]);
    expect(stackProcessesIn(dir)).toEqual([second.supervisor]);
    expect(survivors(Object.values(first.services)).sort()).toEqual(Object.values(first.services).sort());
    expect((await status(dir)).owner).toEqual({ pid: second.supervisor, alive: true, detached: true });

    // The new one heartbeats the kept services' registrations.
    const [registered] = await registrations(dir, 'db');
    await pastOneTtl(registered?.expiresAt);
    expect(await registrations(dir, 'db')).toHaveLength(1);
  });

  it('a foreground `up` holding the lock still refuses `up --detach` (exit 1); a foreground `up` takes over from a supervisor', async () => {
    const port = await freePort();
    const { dir, pids } = await stackFolder({ web: web(port) });
    const foreground = new StackProcess(['up', '--json'], dir);
    await waitFor(() => foreground.hasState('web', 'healthy'), 20_000, 'web to be healthy');
    pids.push(...foreground.pids());
    const refused = await runStack(['up', '--detach'], dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already being run by `stack up` \(pid \d+/);
    expect(stackProcessesIn(dir)).toEqual([foreground.child.pid]);
    foreground.child.kill('SIGINT');
    expect(await foreground.exited).toBe(130);

    const { supervisor, services } = await upDetached(dir, pids);
    const takeover = new StackProcess(['up', '--json'], dir);
    await waitFor(() => takeover.hasState('web', 'healthy'), 20_000, 'web to be healthy again');
    expect(takeover.events()).toContainEqual(
      expect.objectContaining({ type: 'state', service: 'web', state: 'healthy', reason: 'unchanged', pid: services.web }),
    );
    expect(survivors([supervisor])).toEqual([]);
    takeover.child.kill('SIGINT');
    expect(await takeover.exited).toBe(130);
    expect(survivors(pids)).toEqual([]);
  });

  it('down --timeout reaches the supervisor: a service that ignores SIGTERM is killed after the timeout, not its own grace', async () => {
    const { dir, pids } = await stackFolder({});
    const marker = path.join(dir, 'got-sigterm');
    const stubborn = `process.on('SIGTERM', () => require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x')); setInterval(() => {}, 1000);`;
    await writeStack(dir, { stubborn: { command: [process.execPath, '-e', stubborn], stopGracePeriod: '600s' } });
    const { supervisor, services } = await upDetached(dir, pids);
    expect(services.stubborn).toBeDefined();
    // Its own grace period (10 minutes) is longer than this test may take: only the timeout ends it.
    const down = await runStack(['down', '--timeout', '1'], dir);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`asked the running \`stack up\` (pid ${supervisor}) to stop; it did`);
    expect(await readFile(marker, 'utf8')).toBe('x'); // it got SIGTERM first, and ignored it
    expect(survivors(pids)).toEqual([]);
    expect(existsSync(path.join(dir, '.stack', 'detach-test', 'stop-request.json'))).toBe(false);
  }, 45_000);

  it("up --detach --var keeps the value out of the supervisor's argv and environment; it still reaches the templates", async () => {
    const secret = 'hunter2-s3cr3t-on-stdin';
    const { dir, pids } = await stackFolder({});
    const service = {
      command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'],
      templates: [{ destination: 'app.env', format: 'env', data: { PASSWORD: '{{pw}}' } }],
    };
    await writeStack(dir, { app: service }, { pw: { type: 'secret', required: true } });
    const result = await runStack(['up', '--detach', '--json', '--var', `pw=${secret}`], dir);
    expect(result.code, result.stderr).toBe(0);
    const supervisor = supervisorPid(result.stdout)!;
    pids.push(supervisor, ...Object.values(healthyPids(result)));
    const cmdline = await readFile(`/proc/${supervisor}/cmdline`, 'utf8');
    expect(cmdline).toContain('up'); // it is the supervisor
    expect(cmdline).not.toContain(secret);
    expect(cmdline).not.toContain('pw=');
    expect(await readFile(`/proc/${supervisor}/environ`, 'utf8')).not.toContain(secret);
    expect(result.stdout + result.stderr).not.toContain(secret);
    const rendered = await readFile(path.join(dir, '.stack', 'detach-test', 'config', 'app', 'app.env'), 'utf8');
    expect(rendered).toContain(secret);
  });

  it('Ctrl-C while following the start stops the supervisor, which rolls back; exit 130', async () => {
    const port = await freePort();
    const { dir, pids } = await stackFolder({ slow: web(port, {}, { READY_AFTER_MS: '120000' }) });
    const up = new StackProcess(['up', '--detach', '--json'], dir);
    await waitFor(() => up.hasState('slow', 'checking'), 20_000, 'slow to be checking');
    const supervisors = stackProcessesIn(dir).filter((pid) => pid !== up.child.pid);
    expect(supervisors).toHaveLength(1);
    pids.push(...up.pids(), ...supervisors);
    up.child.kill('SIGINT');
    expect(await up.exited).toBe(130);
    expect(up.hasState('slow', 'stopped')).toBe(true);
    expect(survivors(pids)).toEqual([]);
    expect(stackProcessesIn(dir)).toEqual([]);
  });
});
