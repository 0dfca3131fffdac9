// Every validation rule of src/profile/rules.ts, each with a profile that only that rule rejects:
// deleting a rule fails its case, and the last test fails when a rule's code has no case here.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { HEALTH_STRATEGIES } from '../../src/health/registry.js';
import { inspectProfile } from '../../src/profile/load.js';
import { HEALTH_OWN_KEYS } from '../../src/profile/rules.js';
import { schemas } from '../../src/profile/schema.js';
import { tmpFiles } from '../helpers/tmp.js';

const tmp = tmpFiles();
afterAll(() => tmp.cleanup());
let n = 0;

function problemsOf(yaml: string) {
  const file = tmp.file(`p${n++}.yaml`);
  writeFileSync(file, yaml);
  return inspectProfile(file, { env: {}, cwd: tmp.dir });
}

interface Case {
  code: string;
  what: string;
  yaml: string;
  path: string;
  severity?: 'warning';
}

const P = (services: string, extra = '') => `${extra}services:\n${services}`;
/** A discovery backend every host reaches, for the profiles that span hosts. */
const ETCD = 'discovery: { backend: etcd }\n';

const CASES: Case[] = [
  { code: 'invalid_name', what: 'stack name', yaml: P('  a: { command: [a] }\n', 'name: Bad_Name\n'), path: 'name' },
  { code: 'invalid_name', what: 'service name', yaml: P('  Bad: { command: [a] }\n'), path: 'services.Bad' },
  { code: 'invalid_name', what: 'tag', yaml: P('  a: { command: [a], tags: [Not_A_Label] }\n'), path: 'services.a.tags[0]' },
  { code: 'invalid_name', what: 'variable name', yaml: P('  a: { command: [a] }\n', 'variables: { "1x": v }\n'), path: 'variables["1x"]' },
  {
    code: 'invalid_number',
    what: 'NaN in template data',
    yaml: P('  a: { command: [a], templates: [{ destination: a.json, data: { x: .nan } }] }\n'),
    path: 'services.a.templates[0].data.x',
  },
  { code: 'nul_byte', what: 'NUL in argv', yaml: P('  a: { command: ["a\\0b"] }\n'), path: 'services.a.command[0]' },
  {
    code: 'invalid_duration',
    what: 'beyond a Node timer',
    yaml: P('  a: { command: [a] }\n', 'coordination: { dependencyTimeout: 720h }\n'),
    path: 'coordination.dependencyTimeout',
  },
  {
    code: 'invalid_duration',
    what: 'a zero interval',
    yaml: P('  a: { command: [a], port: 1, healthCheck: { strategy: tcp, interval: 0 } }\n'),
    path: 'services.a.healthCheck.interval',
  },
  {
    code: 'invalid_env_name',
    what: 'a name with =',
    yaml: P('  a: { command: [a], environment: { "PATH=/tmp/evil:/bin": x } }\n'),
    path: 'services.a.environment["PATH=/tmp/evil:/bin"]',
  },
  {
    code: 'invalid_env_name',
    what: 'a secret name with a newline',
    yaml: P('  a: { command: [a], secretEnvironment: ["A\\nB"] }\n'),
    path: 'services.a.secretEnvironment[0]',
  },
  { code: 'missing_image', what: 'docker without image', yaml: P('  a: { runtime: docker }\n'), path: 'services.a' },
  { code: 'missing_command', what: 'process without command', yaml: P('  a: { port: 1 }\n'), path: 'services.a' },
  {
    code: 'missing_command',
    what: 'command health check without command',
    yaml: P('  a: { command: [a], healthCheck: { strategy: command } }\n'),
    path: 'services.a.healthCheck',
  },
  { code: 'empty_command', what: 'an empty command', yaml: P('  a: { command: "" }\n'), path: 'services.a.command' },
  { code: 'empty_command', what: 'an empty first word', yaml: P('  a: { image: x, command: [""] }\n'), path: 'services.a.command' },
  { code: 'command_needs_argv', what: 'process command with spaces', yaml: P('  a: { command: "node index.js" }\n'), path: 'services.a.command' },
  { code: 'command_needs_argv', what: 'docker command with spaces', yaml: P('  a: { image: x, command: "node index.js" }\n'), path: 'services.a.command' },
  { code: 'command_needs_argv', what: 'docker entrypoint with spaces', yaml: P('  a: { image: x, entrypoint: "tini --" }\n'), path: 'services.a.entrypoint' },
  {
    code: 'command_needs_argv',
    what: 'health command with spaces',
    yaml: P('  a: { command: [a], healthCheck: { strategy: command, command: "curl -f x" } }\n'),
    path: 'services.a.healthCheck.command',
  },
  { code: 'invalid_signal', what: 'unknown stop signal', yaml: P('  a: { command: [a], stopSignal: SIGBOGUS }\n'), path: 'services.a.stopSignal' },
  { code: 'invalid_address', what: 'address with a newline', yaml: P('  a: { command: [a], address: "127.0.0.1\\nevil" }\n'), path: 'services.a.address' },
  { code: 'missing_port', what: 'tcp check without port', yaml: P('  a: { command: [a], healthCheck: { strategy: tcp } }\n'), path: 'services.a.healthCheck' },
  {
    code: 'remote_health_host',
    what: 'non-loopback probe host',
    yaml: P('  a: { command: [a], port: 1, healthCheck: { strategy: http, host: 10.1.2.3 } }\n'),
    path: 'services.a.healthCheck.host',
  },
  {
    code: 'missing_path',
    what: 'file check without path',
    yaml: P('  a: { command: [a], healthCheck: { strategy: file } }\n'),
    path: 'services.a.healthCheck',
  },
  {
    code: 'missing_unit',
    what: 'systemd check without unit',
    yaml: P('  a: { command: [a], healthCheck: { strategy: systemd } }\n'),
    path: 'services.a.healthCheck',
  },
  {
    code: 'invalid_health',
    what: 'docker strategy on a process',
    yaml: P('  a: { command: [a], healthCheck: { strategy: docker } }\n'),
    path: 'services.a.healthCheck.strategy',
  },
  {
    code: 'invalid_template',
    what: 'neither data nor template',
    yaml: P('  a: { command: [a], templates: [{ destination: a.json }] }\n'),
    path: 'services.a.templates[0]',
  },
  {
    code: 'invalid_template',
    what: 'data as text',
    yaml: P('  a: { command: [a], templates: [{ destination: a.txt, format: text, data: { x: 1 } }] }\n'),
    path: 'services.a.templates[0].format',
  },
  {
    code: 'invalid_template',
    what: 'env without env format',
    yaml: P('  a: { command: [a], templates: [{ destination: a.json, data: { x: 1 }, env: true }] }\n'),
    path: 'services.a.templates[0].env',
  },
  {
    code: 'invalid_destination',
    what: 'absolute destination',
    yaml: P('  a: { command: [a], templates: [{ destination: /etc/x.json, data: {} }] }\n'),
    path: 'services.a.templates[0].destination',
  },
  {
    code: 'invalid_destination',
    what: 'sub/.. is the folder itself',
    yaml: P('  a: { command: [a], templates: [{ destination: sub/.., data: {}, format: json }] }\n'),
    path: 'services.a.templates[0].destination',
  },
  {
    code: 'duplicate_destination',
    what: 'two templates, one file',
    yaml: P('  a: { command: [a], templates: [{ destination: a.json, data: {} }, { destination: ./a.json, data: {} }] }\n'),
    path: 'services.a.templates[1].destination',
  },
  { code: 'invalid_port', what: 'an impossible host port', yaml: P('  a: { image: x, ports: ["99999:80"] }\n'), path: 'services.a.ports[0]' },
  { code: 'invalid_port', what: 'an impossible address', yaml: P('  a: { image: x, ports: ["999.1.1.1:8080:80"] }\n'), path: 'services.a.ports[0]' },
  {
    code: 'port_conflict',
    what: 'same port twice',
    yaml: P('  a: { image: x, ports: [8080] }\n  b: { image: x, ports: [8080] }\n'),
    path: 'services.b.ports[0]',
  },
  {
    code: 'port_conflict',
    what: '0.0.0.0 next to 127.0.0.1',
    yaml: P('  a: { image: x, ports: ["127.0.0.1:8080:80"] }\n  b: { image: x, ports: ["0.0.0.0:8080:80"] }\n'),
    path: 'services.b.ports[0]',
  },
  {
    code: 'invalid_volume',
    what: 'relative volume target',
    yaml: P('  a: { image: x, volumes: [{ source: data, target: data }] }\n'),
    path: 'services.a.volumes[0]',
  },
  {
    code: 'invalid_type',
    what: 'number variable with a text default',
    yaml: P('  a: { command: [a] }\n', 'variables: { n: { type: number, default: many } }\n'),
    path: 'variables.n.default',
  },
  {
    code: 'invalid_format',
    what: 'a javascript: URL default',
    yaml: P('  a: { command: [a] }\n', 'variables: { u: { type: url, default: "javascript:alert(1)" } }\n'),
    path: 'variables.u.default',
  },
  {
    code: 'secret_default',
    what: 'a secret with a default',
    yaml: P('  a: { command: [a] }\n', 'variables: { s: { type: secret, default: hunter2 } }\n'),
    path: 'variables.s.default',
    severity: 'warning',
  },
  {
    code: 'disabled_dependency',
    what: 'required dependency on a disabled service',
    yaml: P('  a: { command: [a], dependencies: [b] }\n  b: { command: [b], enable: false }\n'),
    path: 'services.a.dependencies[0]',
  },
  {
    code: 'ineffective_field',
    what: 'ports on a process service',
    yaml: P('  a: { command: [a], ports: [8080] }\n'),
    path: 'services.a.ports',
    severity: 'warning',
  },
  {
    code: 'ineffective_field',
    what: 'image with runtime: process',
    yaml: P('  a: { runtime: process, image: x, command: [a] }\n'),
    path: 'services.a.image',
    severity: 'warning',
  },
  {
    code: 'ineffective_field',
    what: 'an endpoint on a tcp check',
    yaml: P('  a: { command: [a], port: 1, healthCheck: { strategy: tcp, endpoint: /health } }\n'),
    path: 'services.a.healthCheck.endpoint',
    severity: 'warning',
  },
  {
    code: 'ineffective_field',
    what: "a port on a dependency's command check",
    yaml: P('  a: { command: [a], dependencies: [{ name: b, healthCheck: { strategy: command, command: [check], port: 5 } }] }\n  b: { command: [b] }\n'),
    path: 'services.a.dependencies[0].healthCheck.port',
    severity: 'warning',
  },
  {
    code: 'invalid_ttl',
    what: 'heartbeat not shorter than ttl',
    yaml: P('  a: { command: [a] }\n', 'discovery: { ttl: 5s, heartbeatInterval: 10s }\n'),
    path: 'discovery.heartbeatInterval',
  },
  {
    code: 'leader_follower',
    what: 'leader-follower without hosts',
    yaml: P('  a: { command: [a] }\n', `${ETCD}coordination: { strategy: leader-follower }\n`),
    path: 'coordination.strategy',
  },
  {
    code: 'leader_follower',
    what: 'leader-follower on a backend that cannot elect',
    yaml: P(
      '  a: { command: [a], host: h }\n',
      `discovery: { backend: sql }\nhosts: { h: { address: 10.0.0.1 } }\ncoordination: { strategy: leader-follower }\n`,
    ),
    path: 'discovery',
  },
  {
    code: 'singleton',
    what: 'a singleton without leader-follower',
    yaml: P('  a: { command: [a], host: h, singleton: true }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 } }\ncoordination: { strategy: peer-to-peer }\n`),
    path: 'services.a.singleton',
  },
  {
    code: 'singleton',
    what: 'a singleton placed on a host',
    yaml: P('  a: { command: [a], host: h, singleton: true }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 } }\ncoordination: { strategy: leader-follower }\n`),
    path: 'services.a.host',
  },
  {
    code: 'singleton',
    what: 'a singleton with replicas',
    yaml: P(
      '  a: { command: [a], singleton: true, replicas: 2 }\n',
      `${ETCD}hosts: { h: { address: 10.0.0.1 } }\ncoordination: { strategy: leader-follower }\n`,
    ),
    path: 'services.a.replicas',
  },
  {
    code: 'singleton',
    what: 'a singleton bound to loopback',
    yaml: P(
      '  a: { command: [a], singleton: true, address: 127.0.0.1 }\n',
      `${ETCD}hosts: { h: { address: 10.0.0.1 } }\ncoordination: { strategy: leader-follower }\n`,
    ),
    path: 'services.a.address',
  },
  {
    code: 'invalid_host',
    what: 'a loopback host address',
    yaml: P('  a: { command: [a], host: h }\n', `${ETCD}hosts: { h: { address: 127.0.0.1 } }\n`),
    path: 'hosts.h.address',
  },
  {
    code: 'invalid_host',
    what: 'two hosts, one address',
    yaml: P('  a: { command: [a], host: h }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 }, i: { address: 10.0.0.1 } }\n`),
    path: 'hosts.i.address',
  },
  {
    code: 'invalid_host',
    what: 'a docker engine that is no URL',
    yaml: P('  a: { command: [a], host: h }\n', `${ETCD}hosts: { h: { address: 10.0.0.1, docker: "10.0.0.1:2375" } }\n`),
    path: 'hosts.h.docker',
  },
  {
    code: 'invalid_host',
    what: 'a host named all',
    yaml: P('  a: { command: [a], host: h }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 }, all: { address: 10.0.0.2 } }\n`),
    path: 'hosts.all',
  },
  {
    code: 'missing_host',
    what: 'a service placed nowhere',
    yaml: P('  a: { command: [a] }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 } }\n`),
    path: 'services.a',
  },
  {
    code: 'unknown_host',
    what: 'a host not declared',
    yaml: P('  a: { command: [a], host: hh }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 } }\n`),
    path: 'services.a.host',
  },
  { code: 'unknown_host', what: 'host: without hosts', yaml: P('  a: { command: [a], host: h }\n'), path: 'services.a.host' },
  {
    code: 'unknown_host',
    what: 'host: all outside mesh',
    yaml: P('  a: { command: [a], host: all }\n', `${ETCD}hosts: { h: { address: 10.0.0.1 } }\n`),
    path: 'services.a.host',
  },
  {
    code: 'local_discovery',
    what: 'hosts on file discovery',
    yaml: P('  a: { command: [a], host: h }\n', 'hosts: { h: { address: 10.0.0.1 } }\n'),
    path: 'hosts',
  },
  {
    code: 'external_service',
    what: 'an external service with a command',
    yaml: P('  a: { command: [a], dependencies: [b] }\n  b: { external: true, command: [b] }\n'),
    path: 'services.b.command',
  },
  { code: 'external_service', what: 'stack: without external', yaml: P('  a: { command: [a], stack: other }\n'), path: 'services.a.stack' },
  {
    code: 'unreachable_dependency',
    what: 'a dependency bound to loopback on another host',
    yaml: P(
      '  a: { command: [a], host: h, dependencies: [b] }\n  b: { command: [b], host: i, address: 127.0.0.1 }\n',
      `${ETCD}hosts: { h: { address: 10.0.0.1 }, i: { address: 10.0.0.2 } }\n`,
    ),
    path: 'services.a.dependencies[0]',
  },
];

describe('every rule rejects what it is for, at its path', () => {
  for (const c of CASES) {
    it(`${c.code}: ${c.what}`, () => {
      const { problems, profile } = problemsOf(c.yaml);
      const hit = problems.find((p) => p.code === c.code && p.path === c.path);
      expect(hit, JSON.stringify(problems, null, 1)).toBeDefined();
      expect(hit?.severity).toBe(c.severity ?? 'error');
      expect(hit?.line).toBeGreaterThan(0);
      if (c.severity === 'warning') {
        // only warnings: the profile is usable
        expect(problems.filter((p) => p.severity !== 'warning')).toEqual([]);
        expect(profile).toBeDefined();
      } else {
        expect(profile).toBeUndefined();
      }
    });
  }

  it('a required dependency on a disabled service is an error, an optional one is not', () => {
    const ok = problemsOf(P('  a: { command: [a], dependencies: [{ name: b, type: optional }] }\n  b: { command: [b], enable: false }\n'));
    expect(ok.problems.filter((p) => p.severity !== 'warning')).toEqual([]);
  });

  it('every code that rules.ts and rules-hosts.ts report has a case above', () => {
    const source = ['rules.ts', 'rules-hosts.ts'].map((f) => readFileSync(new URL(`../../src/profile/${f}`, import.meta.url), 'utf8')).join('\n');
    const codes = new Set([...source.matchAll(/code: '([a-z_]+)'/g)].map((m) => m[1]));
    const covered = new Set(CASES.map((c) => c.code));
    expect([...codes].filter((c) => !covered.has(c!))).toEqual([]);
  });
});

describe('ineffective health-check keys follow the health registry', () => {
  it("each strategy's own keys in rules.ts are the keys its definition declares", () => {
    const { z } = schemas();
    const t = { duration: z.string(), port: z.number(), argv: z.string() };
    for (const def of HEALTH_STRATEGIES) {
      const declared = Object.keys((def.options as (z: unknown, t: unknown) => Record<string, unknown>)(z, t)).sort();
      expect([...(HEALTH_OWN_KEYS[def.name] ?? ['<missing>'])].sort(), def.name).toEqual(declared);
    }
  });
});

describe('one pass: schema problems and rule problems together', () => {
  it('an unknown key does not hide the rules', () => {
    const { problems } = problemsOf(
      P('  a: { image: x, ports: [8080], prot: 1 }\n  b: { image: x, ports: [8080], stopSignal: SIGBOGUS }\n  c: { command: "node x.js" }\n'),
    );
    expect(problems.map((p) => [p.code, p.path])).toEqual([
      ['unknown_key', 'services.a.prot'],
      ['port_conflict', 'services.b.ports[0]'],
      ['invalid_signal', 'services.b.stopSignal'],
      ['command_needs_argv', 'services.c.command'],
    ]);
  });

  it('a wrong value does not hide rules elsewhere, and a rule does not judge what the schema removed', () => {
    const { problems } = problemsOf(P('  a: { image: 42 }\n  b: { runtime: process, dependencies: [a], stopSignal: SIGBOGUS }\n'));
    expect(problems.map((p) => [p.code, p.path])).toEqual([
      ['invalid_type', 'services.a.image'],
      ['missing_command', 'services.b'],
      ['invalid_signal', 'services.b.stopSignal'],
    ]);
  });
});
