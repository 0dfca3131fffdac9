/**
 * `stack up | down | status | logs` as separate processes, the way a user runs them: a stack
 * started by one process is seen and stopped by another, even after the first was killed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../helpers/net.js';
import { survivors, tempDir } from '../engine/helpers.js';
import { runStack, stackProcessesIn, StackProcess, supervisorPid, useStackFolders, webService } from './helpers.js';

const { stackFolder, cleanups } = useStackFolders({ prefix: 'stack-cli-', name: 'cli-test', dependencyTimeout: '60s' });
const web = webService;

describe('stack up / down across processes', () => {
  it('kill -9 of `stack up` mid-startup: status and down from fresh processes leave no orphan', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({
      db: web(pa),
      slow: web(pb, { READY_AFTER_MS: '120000' }, { dependencies: ['db'] }),
    });
    const up = new StackProcess(['up', '--json'], dir);
    await waitFor(() => up.hasState('slow', 'checking'), 20_000, 'slow to be checking');
    pids.push(...up.pids());
    expect(pids).toHaveLength(2);
    up.child.kill('SIGKILL');
    await up.exited;
    // The services outlive the killed `stack up`.
    expect(survivors(pids)).toEqual(pids);

    const status = await runStack(['status', '--json'], dir);
    expect(status.code).toBe(0);
    const view = JSON.parse(status.stdout) as { owner: { alive: boolean }; services: { name: string; state: string; running: boolean }[] };
    expect(view.owner.alive).toBe(false);
    expect(view.services.map((s) => [s.name, s.running])).toEqual([
      ['db', true],
      ['slow', true],
    ]);

    const down = await runStack(['down'], dir);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain("stack 'cli-test' is down");
    expect(survivors(pids)).toEqual([]);

    const again = await runStack(['down'], dir);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing is running');
  });

  it('a second concurrent `up` of the same stack fails clearly; Ctrl-C stops the first (exit 130)', async () => {
    const port = await freePort();
    const { dir, pids } = await stackFolder({ web: web(port) });
    const first = new StackProcess(['up', '--json'], dir);
    await waitFor(() => first.hasState('web', 'healthy'), 20_000, 'web to be healthy');
    pids.push(...first.pids());

    const second = await runStack(['up'], dir);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/already being run by `stack up` \(pid \d+/);
    expect(survivors(pids)).toEqual(pids);

    first.child.kill('SIGINT');
    expect(await first.exited).toBe(130);
    expect(first.hasState('web', 'stopped')).toBe(true);
    expect(survivors(pids)).toEqual([]);
  });

  it('up --detach returns once healthy; status, logs and down work from other processes', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({
      migrate: { kind: 'task', command: [process.execPath, '-e', 'console.log("migrated")'] },
      api: web(pa, { API_TOKEN: 'very-secret-value' }, { dependencies: ['migrate', { name: 'cache', type: 'optional' }] }),
      cache: web(pb),
    });
    const up = await runStack(['up', '--detach', '--json'], dir);
    expect(up.code).toBe(0);
    const events = up.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    pids.push(...new Set(events.flatMap((e) => (typeof e.pid === 'number' ? [e.pid] : []))));
    expect(events.at(-1)).toMatchObject({ type: 'stack', phase: 'detached', supervisor: expect.any(Number) });
    const supervisor = supervisorPid(up.stdout)!;
    pids.push(supervisor);
    expect(up.stdout).not.toContain('very-secret-value');

    const status = await runStack(['status', '--json'], dir);
    expect(status.stdout).not.toContain('very-secret-value');
    const view = JSON.parse(status.stdout) as { services: { name: string; state: string; running: boolean; lastHealth?: { ok: boolean } }[] };
    expect(view.services.map((s) => [s.name, s.state, s.running])).toEqual([
      ['api', 'healthy', true],
      ['cache', 'healthy', true],
      ['migrate', 'completed', false],
    ]);
    expect(view.services[0]?.lastHealth?.ok).toBe(true);

    const table = await runStack(['status'], dir);
    expect(table.stdout).toMatch(/SERVICE\s+STATE\s+HEALTH\s+PID\/CONTAINER\s+UPTIME\s+RESTARTS\s+LAST HEALTH/);

    const logs = await runStack(['logs', 'migrate'], dir);
    expect(logs.stdout.trim()).toBe('migrated');
    const tail = await runStack(['logs', 'api', '-n', '1'], dir);
    expect(tail.stdout.trim().split('\n')).toHaveLength(1);

    // Already running (detached): another `up` converges, keeping every unchanged service.
    const again = await runStack(['up', '--detach'], dir);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/api: healthy — unchanged/);
    expect(again.stdout).toMatch(/is up: 3 services in [\d.]+s \(2 unchanged\)/);
    // The new supervisor took over from the first one.
    const successor = supervisorPid(again.stdout)!;
    pids.push(successor);
    expect(survivors([supervisor])).toEqual([]);
    expect(stackProcessesIn(dir)).toEqual([successor]);

    const dry = await runStack(['down', '--dry-run'], dir);
    expect(dry.stdout).toContain('would stop api');
    expect(survivors(pids)).toEqual(expect.arrayContaining([successor]));
    expect(survivors(pids)).toHaveLength(3); // api, cache, the supervisor

    // `down` asks the supervisor to stop the stack (the path of any live `stack up`): it stops
    // its services itself, so they are in its log, not in down's list.
    const down = await runStack(['down'], dir);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`asked the running \`stack up\` (pid ${successor}) to stop; it did`);
    const stopped = (await readFile(path.join(dir, '.stack', 'cli-test', 'supervisor.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; state?: string; service?: string })
      .filter((e) => e.type === 'state' && e.state === 'stopped')
      .map((e) => e.service);
    expect(stopped).toEqual(['api', 'cache']); // dependents first: api depends on cache
    expect(survivors(pids)).toEqual([]);
    expect((await runStack(['status'], dir)).stdout).toContain('nothing is running');
  });

  it('up --detach again after a profile edit: unchanged services keep their pids, a changed one is replaced, a removed one stopped', async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const services = { db: web(pa), api: web(pb, { GREETING: 'hello' }, { dependencies: ['db'] }), old: web(pc) };
    const { dir, pids } = await stackFolder(services);
    const pidsOf = (stdout: string) => {
      const out: Record<string, number> = {};
      for (const line of stdout.trim().split('\n')) {
        const e = JSON.parse(line) as { type: string; service?: string; state?: string; pid?: number };
        if (e.type === 'state' && e.state === 'healthy' && e.service && e.pid !== undefined) out[e.service] = e.pid;
      }
      return out;
    };
    const first = await runStack(['up', '--detach', '--json'], dir);
    expect(first.code, first.stderr).toBe(0);
    const before = pidsOf(first.stdout);
    pids.push(...Object.values(before), supervisorPid(first.stdout)!);

    // Edit the profile: api gets another environment, old is removed.
    const { old: _removed, ...kept } = { ...services, api: web(pb, { GREETING: 'bonjour' }, { dependencies: ['db'] }) };
    await writeFile(
      path.join(dir, 'stack.json'),
      JSON.stringify({ name: 'cli-test', runtime: 'process', discovery: { backend: 'file', fileDirectory: path.join(dir, 'discovery') }, services: kept }),
    );
    const second = await runStack(['up', '--detach', '--json'], dir);
    expect(second.code, second.stderr).toBe(0);
    const after = pidsOf(second.stdout);
    pids.push(...Object.values(after), supervisorPid(second.stdout)!);
    expect(after.db).toBe(before.db);
    expect(after.api).not.toBe(before.api);
    expect(Object.keys(after).sort()).toEqual(['api', 'db']);
    expect(survivors([before.api!, before.old!])).toEqual([]);
    const events = second.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events).toContainEqual(expect.objectContaining({ type: 'state', service: 'db', state: 'healthy', reason: 'unchanged' }));
    expect(events).toContainEqual(expect.objectContaining({ type: 'state', service: 'old', state: 'stopped' }));

    const status = JSON.parse((await runStack(['status', '--json'], dir)).stdout) as {
      services: { name: string; running: boolean; handle?: { pid?: number } }[];
    };
    expect(status.services.map((s) => [s.name, s.running, s.handle?.pid])).toEqual([
      ['api', true, after.api],
      ['db', true, before.db],
    ]);

    const down = await runStack(['down'], dir);
    expect(down.code).toBe(0);
    expect(survivors(pids)).toEqual([]);
  });

  it('`stack down` from another process stops a foreground `stack up`, which exits 130', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const { dir, pids } = await stackFolder({ db: web(pa), api: web(pb, {}, { dependencies: ['db'], restart: 'always' }) });
    const up = new StackProcess(['up', '--json'], dir);
    await waitFor(() => up.hasState('api', 'healthy'), 20_000, 'api to be healthy');
    pids.push(...up.pids());
    const down = await runStack(['down'], dir);
    expect(down.code).toBe(0);
    expect(down.stdout).toMatch(/asked the running `stack up` \(pid \d+\) to stop; it did/);
    expect(await up.exited).toBe(130);
    // It stopped them itself, dependents first, and restarted nothing (restart: always).
    const events = up
      .events()
      .filter((e) => e.type === 'state' && e.state === 'stopped')
      .map((e) => e.service);
    expect(events).toEqual(['api', 'db']);
    expect(up.events().some((e) => e.type === 'restart')).toBe(false);
    expect(survivors(pids)).toEqual([]);
  });

  it('exit codes: unreachable discovery is 3, a missing template variable is 2; nothing starts either way', async () => {
    const { dir, cleanup } = await tempDir('stack-cli-');
    cleanups.push(cleanup);
    const service = { command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'] };
    await writeFile(
      path.join(dir, 'nats.json'),
      JSON.stringify({ name: 'exits', runtime: 'process', discovery: { backend: 'nats', natsUrl: 'nats://127.0.0.1:1' }, services: { a: service } }),
    );
    const unreachable = await runStack(['up', '--profile', './nats.json'], dir);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('unreachable');

    const templated = { ...service, templates: [{ destination: 'a.env', format: 'env', data: { X: '{{hostname}}' } }] };
    await writeFile(
      path.join(dir, 'tpl.json'),
      JSON.stringify({
        name: 'exits',
        runtime: 'process',
        discovery: { backend: 'memory' },
        variables: { hostname: { type: 'string', required: true } },
        services: { a: templated },
      }),
    );
    const invalid = await runStack(['up', '--profile', './tpl.json'], dir);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('hostname');
    const status = await runStack(['status', '--profile', './tpl.json'], dir);
    expect(status.stdout).toContain('nothing is running');
  });
});
