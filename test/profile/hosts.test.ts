// A profile across hosts: hosts, placement, external services, as the loader normalises them.
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectProfile } from '../../src/profile/load.js';
import { tmpFiles } from '../helpers/tmp.js';

const tmp = tmpFiles();
afterAll(() => tmp.cleanup());

function load(yaml: string) {
  const file = tmp.file(`h${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return inspectProfile(file, { env: {}, cwd: tmp.dir });
}

const PROFILE = `
name: spread
discovery: { backend: etcd }
coordination: { strategy: mesh }
hosts:
  edge: { address: 10.0.0.11 }
  data: { address: 10.0.0.12, docker: "tcp://10.0.0.12:2376" }
services:
  db: { image: postgres, host: data, port: 5432, ports: [5432] }
  api: { command: [api], host: edge, port: 80, dependencies: [db, auth] }
  local: { command: [x], host: edge, address: 127.0.0.1 }
  relay: { command: [relay], host: all, port: 7000 }
  auth: { external: true, stack: identity }
`;

describe('a profile across hosts', () => {
  it('places services on hosts, at their addresses, and keeps external ones as names', () => {
    const { problems, profile } = load(PROFILE);
    expect(problems.filter((p) => p.severity !== 'warning')).toEqual([]);
    expect(profile!.hosts).toEqual({
      edge: { name: 'edge', address: '10.0.0.11' },
      data: { name: 'data', address: '10.0.0.12', docker: 'tcp://10.0.0.12:2376' },
    });
    const s = profile!.services;
    expect(s.db).toMatchObject({ host: 'data', address: '10.0.0.12', addressFromHost: true });
    // published on the host's address, not on loopback where no other host reaches it
    expect(s.db!.ports).toEqual([{ container: 5432, host: 5432, hostIp: '10.0.0.12', protocol: 'tcp' }]);
    expect(s.api).toMatchObject({ host: 'edge', address: '10.0.0.11' });
    expect(s.local).toMatchObject({ host: 'edge', address: '127.0.0.1' });
    expect(s.local!.addressFromHost).toBeUndefined();
    // every host: the address is the one of the host it runs on, filled in there
    expect(s.relay).toMatchObject({ host: 'all', addressFromHost: true });
    expect(s.auth!.external).toEqual({ stack: 'identity' });
  });

  it('a profile without hosts is unchanged: loopback, no placement', () => {
    const { profile } = load('services:\n  a: { command: [a], ports: [80] }\n');
    expect(profile!.hosts).toEqual({});
    expect(profile!.services.a).toMatchObject({ address: '127.0.0.1', ports: [{ hostIp: '127.0.0.1' }] });
    expect(profile!.services.a!.host).toBeUndefined();
  });

  it('reports every problem of a bad multi-host profile at once', () => {
    const { problems } = load(`
coordination: { strategy: leader-follower }
hosts: { edge: { address: 127.0.0.1 } }
services:
  a: { command: [a] }
  b: { command: [b], host: egde }
`);
    const codes = problems.filter((p) => p.severity !== 'warning').map((p) => `${p.code} ${p.path}`);
    expect(codes).toEqual(
      expect.arrayContaining([
        'leader_follower coordination.strategy',
        'invalid_host hosts.edge.address',
        'missing_host services.a',
        'unknown_host services.b.host',
        'local_discovery hosts',
      ]),
    );
    expect(problems.find((p) => p.code === 'unknown_host')?.message).toContain("did you mean 'edge'");
  });

  it('a dependency on a service of an undeclared host is one problem (the unknown host), not also an unreachable one', () => {
    const { problems } = load(`
discovery: { backend: etcd }
hosts: { edge: { address: 10.0.0.11 } }
services:
  web: { command: [w], host: edge, dependencies: [db] }
  db: { command: [d], host: zz, address: 127.0.0.1 }
`);
    expect(problems.filter((p) => p.severity !== 'warning').map((p) => `${p.code} ${p.path}`)).toEqual(['unknown_host services.db.host']);
  });
});
