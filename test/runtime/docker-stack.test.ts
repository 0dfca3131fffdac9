/**
 * Whole stacks of containers through the built `stack` command (engine + Docker runtime), as a
 * user runs them: health-gated order, rollback of a failed start, and `down` from a fresh
 * process after `stack up` was killed with SIGKILL. Containers use host networking on 127.0.0.1,
 * or the stack's network with ports published on 127.0.0.1; afterwards no container or network
 * of the stack may be left.
 */
import { describe, expect, it } from 'vitest';
import { StackProcess } from '../cli/helpers.js';
import { BUSYBOX_IMAGE, httpdCommand } from '../fixtures/docker-image.js';
import { useDockerStack } from '../fixtures/docker-stack.js';
import { freePort, waitFor } from '../helpers/net.js';

const ds = useDockerStack('stack-docker-stack-');
const stackCmd = ds.run;

/** A profile in a fresh folder (state, discovery files and logs stay in it). */
async function profile(services: Record<string, unknown>): Promise<void> {
  await ds.create();
  await ds.writeProfile(services);
}

const httpCheck = { strategy: 'http', endpoint: '/', interval: '100ms', retries: 0 };

/** A busybox httpd on host networking, 127.0.0.1:<port>, that first runs `before` (shell). */
function hostWeb(port: number, before = 'true', extra: Record<string, unknown> = {}) {
  return {
    image: BUSYBOX_IMAGE,
    pull: 'never',
    network: 'host',
    port,
    command: ['/bin/sh', '-c', `${before} && exec ${httpdCommand(port).join(' ')}`],
    healthCheck: httpCheck,
    stopGracePeriod: '5s',
    ...extra,
  };
}

/** Can the shell inside a host-network container reach 127.0.0.1:<port>? Exits 7 when not. */
const mustReach = (port: number) => `wget -q -O /dev/null http://127.0.0.1:${port}/ || exit 7`;

async function containersByService(): Promise<Record<string, string>> {
  return ds.byService((c) => c.State);
}

describe('stacks of containers through `stack`', () => {
  it('starts dependents only once their dependencies are healthy, then `down` removes everything', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    await profile({
      // a becomes ready a moment after it starts; b exits 7 if it starts before a answers.
      a: hostWeb(pa, 'sleep 1'),
      b: { ...hostWeb(pb, mustReach(pa)), dependencies: ['a'] },
      // c runs on the stack's network; its port is published on 127.0.0.1 for the health check.
      c: {
        image: BUSYBOX_IMAGE,
        pull: 'never',
        port: 8080,
        command: httpdCommand(8080, 'all'),
        healthCheck: httpCheck,
        dependencies: ['b'],
      },
    });

    const up = await stackCmd('up', '--detach');
    expect(up.code, up.stderr + up.stdout).toBe(0);
    expect(await containersByService()).toEqual({ a: 'running', b: 'running', c: 'running' });
    expect((await ds.leftovers()).networks).toEqual([`${ds.name}_default`]);

    const status = await stackCmd('status', '--json');
    expect(status.code, status.stderr).toBe(0);

    const down = await stackCmd('down');
    expect(down.code, down.stderr + down.stdout).toBe(0);
  });

  it('rolls back when a required dependency fails: exit 1 and no container or network left', async () => {
    const [pa, pb, px] = [await freePort(), await freePort(), await freePort()];
    await profile({
      broken: hostWeb(pa, 'exit 1'),
      dependent: { ...hostWeb(pb), dependencies: ['broken'] },
      independent: {
        image: BUSYBOX_IMAGE,
        pull: 'never',
        port: px,
        ports: [`127.0.0.1:${px}:8080`],
        command: httpdCommand(8080, 'all'),
        healthCheck: { ...httpCheck, port: 8080 },
      },
    });

    const up = await stackCmd('up', '--json');
    expect(up.code, up.stderr + up.stdout).toBe(1);
    const states = up.stdout.split('\n').flatMap((line) => {
      try {
        const e = JSON.parse(line) as { type?: string; service?: string; state?: string };
        return e.type === 'state' ? [`${e.service}:${e.state}`] : [];
      } catch {
        return [];
      }
    });
    // The independent service was up (healthy through its published port) before the rollback.
    expect(states).toEqual(expect.arrayContaining(['broken:failed', 'dependent:blocked', 'independent:healthy', 'independent:stopped']));
    // afterEach: nothing of the stack is left (rollback removed containers and the network).
  });

  it('`down` from a fresh process cleans up after `stack up` was killed with SIGKILL mid-startup', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    await profile({
      a: hostWeb(pa),
      // b never answers, so `up` is still waiting for it when it is killed.
      b: { ...hostWeb(pb, 'sleep 1000'), dependencies: ['a'] },
    });

    const up = new StackProcess(['up', '--json', '--profile', 'stack.json'], ds.dir);
    try {
      await waitFor(async () => (await containersByService()).b === 'running', 30_000, 'b to be started');
      up.child.kill('SIGKILL');
      await up.exited;
      expect(await containersByService()).toEqual({ a: 'running', b: 'running' }); // they outlive the killed `up`

      const down = await stackCmd('down');
      expect(down.code, down.stderr + down.stdout).toBe(0);
    } finally {
      up.child.kill('SIGKILL');
    }
  });
});
