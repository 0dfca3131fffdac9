/**
 * `stack up` on a running stack of containers converges it, as `docker compose up` does: through
 * the built `stack` command, a re-`up` after a profile edit keeps unchanged containers (same id),
 * recreates the changed one, removes the one gone from the profile; `down` then leaves nothing.
 * Containers use host networking on 127.0.0.1, or ports published on 127.0.0.1.
 */
import { describe, expect, it } from 'vitest';
import { StackProcess } from '../cli/helpers.js';
import { BUSYBOX_IMAGE, httpdCommand } from '../fixtures/docker-image.js';
import { useDockerStack } from '../fixtures/docker-stack.js';
import { freePort, waitFor } from '../helpers/net.js';

const ds = useDockerStack('stack-docker-converge-');
const { docker } = ds;
const stackCmd = ds.run;

const httpCheck = { strategy: 'http', endpoint: '/', interval: '100ms', retries: 0 };

/** A busybox httpd on host networking, 127.0.0.1:<port>. */
function hostWeb(port: number, extra: Record<string, unknown> = {}) {
  return { image: BUSYBOX_IMAGE, pull: 'never', network: 'host', port, command: httpdCommand(port), healthCheck: httpCheck, stopGracePeriod: '5s', ...extra };
}

/** Container id of each service's container, running or not. */
async function containerIds(): Promise<Record<string, string>> {
  return ds.byService((c) => c.Id);
}

function stateEvents(stdout: string): { service: string; state: string; reason?: string }[] {
  return stdout.split('\n').flatMap((line) => {
    try {
      const e = JSON.parse(line) as { type?: string; service?: string; state?: string; reason?: string };
      return e.type === 'state' && e.service && e.state ? [{ service: e.service, state: e.state, ...(e.reason ? { reason: e.reason } : {}) }] : [];
    } catch {
      return [];
    }
  });
}

describe('re-`up` of a running stack of containers', () => {
  it('keeps unchanged containers, recreates a changed one (its dependent kept), removes one gone from the profile', async () => {
    await ds.create();
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const api = (version: string) => hostWeb(pa, { environment: { VERSION: version } });
    // web runs on the stack's network, its port published on 127.0.0.1 for the health check.
    const web = { image: BUSYBOX_IMAGE, pull: 'never', port: 8080, command: httpdCommand(8080, 'all'), healthCheck: httpCheck, dependencies: ['api'] };
    await ds.writeProfile({ api: api('1'), web, old: hostWeb(pb), cache: hostWeb(pc) });

    const first = await stackCmd('up', '--detach');
    expect(first.code, first.stderr + first.stdout).toBe(0);
    const before = await containerIds();
    expect(Object.keys(before).sort()).toEqual(['api', 'cache', 'old', 'web']);

    // Unchanged profile: every container is kept.
    const same = await stackCmd('up', '--detach', '--json');
    expect(same.code, same.stderr + same.stdout).toBe(0);
    expect(await containerIds()).toEqual(before);
    expect(stateEvents(same.stdout).filter((e) => e.state === 'healthy')).toEqual(
      expect.arrayContaining(['api', 'web', 'old', 'cache'].map((service) => ({ service, state: 'healthy', reason: 'unchanged' }))),
    );

    // api's environment changes, old leaves the profile.
    await ds.writeProfile({ api: api('2'), web, cache: hostWeb(pc) });
    const second = await stackCmd('up', '--detach', '--json');
    expect(second.code, second.stderr + second.stdout).toBe(0);
    const after = await containerIds();
    expect(Object.keys(after).sort()).toEqual(['api', 'cache', 'web']);
    expect(after.api).not.toBe(before.api);
    expect(after.web).toBe(before.web); // a dependent of a recreated service is kept (Compose's default)
    expect(after.cache).toBe(before.cache);
    const events = stateEvents(second.stdout);
    expect(events).toContainEqual({ service: 'old', state: 'stopped', reason: 'removed from the profile' });
    expect(events).toContainEqual({ service: 'web', state: 'healthy', reason: 'unchanged' });
    expect(events).toContainEqual({ service: 'api', state: 'healthy' });
    // web still waited for the recreated api to be healthy before it passed its own gate.
    const at = (service: string, state: string) => events.findIndex((e) => e.service === service && e.state === state);
    expect(at('web', 'starting')).toBeGreaterThan(at('api', 'healthy'));
    const inspected = await docker.getContainer(after.api!).inspect();
    expect(inspected.Config.Env).toContain('VERSION=2');

    const down = await stackCmd('down');
    expect(down.code, down.stderr + down.stdout).toBe(0);
    // afterEach: no container or network of the stack is left.
  });

  it('a second foreground `up` while one runs is refused (exit 1), and the running one is untouched', async () => {
    await ds.create();
    const port = await freePort();
    await ds.writeProfile({ api: hostWeb(port) });
    const first = new StackProcess(['up', '--json', '--profile', 'stack.json'], ds.dir);
    try {
      await waitFor(() => first.hasState('api', 'healthy'), 60_000, 'api to be healthy');
      const before = await containerIds();
      const second = await stackCmd('up', '--detach');
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/already being run by `stack up` \(pid \d+/);
      expect(await containerIds()).toEqual(before);
      first.child.kill('SIGINT');
      expect(await first.exited).toBe(130);
    } finally {
      first.child.kill('SIGKILL');
    }
  });
});
