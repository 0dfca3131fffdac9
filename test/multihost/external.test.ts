/**
 * Two stacks across hosts (issue 14), end to end on a real NATS with JetStream: stack `identity`
 * runs plc on host a; stack `social` runs pds on host b and names plc `external: true, stack:
 * identity`. social's agent starts first and waits; its pds starts once identity's plc has
 * registered (proven from the services' own logs), configured with plc's address on host a; social
 * never starts a plc of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHosts, type HostProcess, type Hosts } from '../fixtures/hosts.js';
import { isAlive } from '../helpers/e2e.js';
import { events, nextEvent, service, serviceLog, stateOf, stopAgent, writeEverywhere } from './helpers.js';

let hosts: Hosts;

beforeAll(async () => {
  hosts = await startHosts({ hosts: ['a', 'b'], services: ['nats'] });
});

afterAll(async () => {
  if (!hosts) return;
  const pids = hosts.processes.map((p) => p.pid);
  await hosts.stop();
  expect(await hosts.leftovers()).toEqual({ namespaces: [], links: [], processes: [] });
  expect(pids.filter(isAlive)).toEqual([]);
});

describe('external services on NATS', () => {
  it('a second stack waits for a service of the first and starts when it registers', async () => {
    const addr = (h: string) => hosts.address(h);
    const discovery = { backend: 'nats', natsUrl: hosts.nats!.url, ttl: '2s', heartbeatInterval: '500ms' };
    const identity = await writeEverywhere(hosts, 'identity', {
      name: 'identity',
      runtime: 'process',
      hosts: { a: { address: addr('a') } },
      discovery,
      coordination: { strategy: 'peer-to-peer' },
      services: { plc: service('a', 'plc', 7401, addr('a')) },
    });
    const social = await writeEverywhere(hosts, 'social', {
      name: 'social',
      runtime: 'process',
      hosts: { b: { address: addr('b') } },
      discovery,
      coordination: { strategy: 'peer-to-peer', dependencyTimeout: '60s' },
      services: {
        plc: { external: true, stack: 'identity' },
        pds: service('b', 'pds', 7402, addr('b'), { dependencies: ['plc'], templates: [{ destination: 'pds.env', data: { PLC: '{{service.plc.url}}' } }] }),
      },
    });
    const agents: HostProcess[] = [];
    try {
      const plan = await hosts.stack('b', ['plan', '--json', '-p', 'stack.json'], { cwd: social('b') });
      expect(JSON.parse(plan.stdout)).toMatchObject({ host: 'b', remote: [{ service: 'plc', external: true, stack: 'identity', dependents: ['pds'] }] });

      const second = hosts.spawnStack('b', ['up', '--json', '-p', 'stack.json'], { cwd: social('b') });
      agents.push(second);
      await nextEvent(second, stateOf('pds', 'waiting'));
      const first = hosts.spawnStack('a', ['up', '--json', '-p', 'stack.json'], { cwd: identity('a') });
      agents.push(first);
      await nextEvent(first, stateOf('plc', 'healthy'));
      await nextEvent(second, (e) => e.type === 'stack' && e.phase === 'up');

      const plcListening = (await serviceLog(identity('a'), 'plc')).find((l) => l.what === 'listening')!.at;
      const pdsStarts = (await serviceLog(social('b'), 'pds')).filter((l) => l.what === 'start');
      expect(pdsStarts).toHaveLength(1);
      expect(plcListening).toBeLessThan(pdsStarts[0]!.at);
      expect(events(second).filter((e) => e.type === 'state' && e.service === 'plc')).toEqual([]); // never started here
      const config = await hosts.fetchFrom('a', `http://${addr('b')}:7402/config`);
      expect(JSON.parse(config.body ?? '{}')).toEqual({ 'pds.env': `PLC=http://${addr('a')}:7401\n` });
    } finally {
      for (const agent of agents.reverse()) await stopAgent(agent);
    }
  });
});
