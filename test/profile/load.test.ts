import { afterEach, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { builtinProfileNames } from '../../src/profile/builtin.js';
import { inspectProfile, loadProfile } from '../../src/profile/load.js';
import { PROD_CLUSTER_ENV, PROD_CLUSTER_SECRETS } from '../helpers/prod-cluster.js';
import { tmpFiles } from '../helpers/tmp.js';

let cleanups: (() => void)[] = [];
afterEach(() => {
  cleanups.forEach((c) => c());
  cleanups = [];
});
function files(f: Record<string, string>) {
  const t = tmpFiles(f);
  cleanups.push(t.cleanup);
  return t;
}
const errorsOf = (ref: string, opts = {}) => inspectProfile(ref, opts).problems.filter((p) => p.severity !== 'warning');

describe('built-in profiles', () => {
  it('ships the four ATproto profiles, each loading cleanly', () => {
    expect(builtinProfileNames()).toEqual(['dev-cluster', 'full-node', 'full-node-docker', 'prod-cluster', 'prod-cluster-swarm', 'simple-pds']);
    for (const name of builtinProfileNames()) {
      // prod-cluster needs its hosts' addresses (below: what it says without them).
      const result = inspectProfile(name, { env: name === 'prod-cluster' ? { ...PROD_CLUSTER_ENV } : {} });
      expect(
        result.problems.filter((p) => p.severity !== 'warning'),
        name,
      ).toEqual([]);
      expect(result.profile?.name).toBe(name);
    }
  });

  it('prod-cluster extends full-node-docker across three hosts: consul, mesh, each service on its host, bound to its address, hardened', () => {
    const p = loadProfile('prod-cluster', { env: { ...PROD_CLUSTER_ENV } });
    expect(p.discovery.backends).toEqual(['consul']);
    expect(p.coordination.strategy).toBe('mesh');
    expect(Object.fromEntries(Object.values(p.hosts).map((h) => [h.name, h.address]))).toEqual({ data: '10.0.0.12', app: '10.0.0.13', edge: '10.0.0.11' });
    expect(Object.keys(p.services).sort()).toEqual(Object.keys(loadProfile('full-node-docker', { env: {} }).services).sort());
    const placed = Object.fromEntries(Object.values(p.services).map((s) => [s.name, s.host]));
    expect(placed).toEqual({
      setup: 'all',
      'service-dids': 'all',
      postgres: 'data',
      databases: 'data',
      plc: 'app',
      dataplane: 'app',
      appview: 'app',
      pds: 'edge',
      ozone: 'edge',
      caddy: 'edge',
    });
    // Registered and listening at their host's address, not on loopback.
    for (const [name, address] of [
      ['plc', '10.0.0.13'],
      ['dataplane', '10.0.0.13'],
      ['appview', '10.0.0.13'],
      ['pds', '10.0.0.11'],
      ['ozone', '10.0.0.11'],
    ] as const) {
      expect(p.services[name]?.address, name).toBe(address);
      expect(p.services[name]?.environment.HOST, name).toBe(address);
    }
    expect(p.services.postgres?.address).toBe('10.0.0.12');
    expect(p.services.postgres?.command).toEqual(['postgres', '-c', 'listen_addresses=10.0.0.12', '-p', '2578']);
    // Secrets are inputs, the same on every host: none is generated.
    for (const name of Object.keys(PROD_CLUSTER_SECRETS)) {
      expect(p.variables[name], name).toMatchObject({ type: 'secret', required: true });
      expect(p.variables[name], name).not.toHaveProperty('generate');
    }
    expect(p.variables.appviewPublicUrl?.default).toBe('https://api.atproto.example.com');
    expect(p.services.pds?.security).toMatchObject({ noNewPrivileges: true, capDrop: ['ALL'], readOnlyRootFilesystem: true });
    // inherited from full-node-docker untouched
    expect(p.services.pds?.image).toBe('node:20.20.0-bookworm-slim');
    expect(p.source.files).toHaveLength(2);
  });

  it('prod-cluster without its hosts’ addresses: each missing one named once, where it is used', () => {
    const errors = errorsOf('prod-cluster', { env: {} });
    expect(errors.map((e) => [e.path, e.message])).toEqual(
      (['data', 'app', 'edge'] as const).map((h) => [
        `hosts.${h}.address`,
        expect.stringMatching(
          new RegExp(`^required variable PROD_${h.toUpperCase()}_ADDR is missing: set PROD_${h.toUpperCase()}_ADDR to the ${h} host's address`),
        ),
      ]),
    );
  });

  it('prod-cluster-swarm keeps none of the hosts: Swarm places the services, one stack up drives them', () => {
    const p = loadProfile('prod-cluster-swarm', { env: {} });
    expect(p.hosts).toEqual({});
    expect(p.coordination.strategy).toBe('hub-spoke');
    expect(Object.values(p.services).filter((s) => s.host !== undefined)).toEqual([]);
  });
});

describe('normalisation', () => {
  it('expands shorthands: healthEndpoint, bare dependency names, durations', () => {
    const { file } = files({
      'stack.yaml': `
services:
  db: { command: [db], port: 5432, healthCheck: { strategy: tcp, interval: 500ms, startPeriod: 2m } }
  api:
    command: [api]
    port: 3000
    healthEndpoint: /health
    dependencies: [db, { name: cache, type: optional }]
`,
    });
    const p = loadProfile(file('stack.yaml'));
    expect(p.name).toBe('stack');
    expect(p.services.api?.healthCheck).toMatchObject({ strategy: 'http', endpoint: '/health', port: 3000 });
    expect(p.services.api?.dependencies).toEqual([
      { name: 'db', type: 'required', onDependencyRestart: 'restart', index: 0 },
      { name: 'cache', type: 'optional', onDependencyRestart: 'rerender', index: 1 },
    ]);
    expect(p.services.db?.healthCheck).toMatchObject({ intervalMs: 500, startPeriodMs: 120_000, port: 5432 });
    expect(p.services.db?.runtime).toBe('process');
  });

  it('reads JSON and TOML profiles too', () => {
    const { file } = files({
      'a.json': JSON.stringify({ name: 'from-json', services: { web: { command: ['web'], port: 80 } } }),
      'b.toml': 'name = "from-toml"\n[services.web]\ncommand = ["web"]\nport = 8080\n',
    });
    expect(loadProfile(file('a.json')).services.web?.port).toBe(80);
    expect(loadProfile(file('b.toml')).name).toBe('from-toml');
  });

  it('marks secret-looking environment names as secret', () => {
    const { file } = files({ 's.yaml': 'services:\n  a: { command: [a], environment: { DB_PASSWORD: hunter2, PORT: 1 } }\n' });
    expect(loadProfile(file('s.yaml')).services.a?.secretEnvironment).toEqual(['DB_PASSWORD']);
  });
});

describe('extends', () => {
  it('deep-merges a relative parent, child wins, null removes', () => {
    const { file } = files({
      'base.yaml': 'name: base\nservices:\n  a: { command: [a], port: 1, tags: [x] }\n  b: { command: [b] }\n',
      'child.yaml': 'extends: ./base.yaml\nname: child\nservices:\n  a: { port: 2 }\n  b: null\n',
    });
    const p = loadProfile(file('child.yaml'));
    expect(p.name).toBe('child');
    expect(p.services.a).toMatchObject({ command: ['a'], port: 2, tags: ['x'] });
    expect(p.services.b).toBeUndefined();
  });

  it('extends a built-in by name, keeping its template paths', () => {
    const { file } = files({ 'mine.yaml': 'extends: simple-pds\nname: mine\n' });
    const p = loadProfile(file('mine.yaml'), { env: {} });
    expect(p.services.caddy?.templates[0]?.templateFile).toMatch(/templates\/simple-pds\/Caddyfile\.hbs$/);
  });

  it('detects extends loops and names the chain', () => {
    const { file } = files({ 'a.yaml': 'extends: ./b.yaml\nservices: {}\n', 'b.yaml': 'extends: ./a.yaml\nservices: {}\n' });
    const [problem] = errorsOf(file('a.yaml'), { cwd: file('') });
    expect(problem?.message).toBe('extends loop: a.yaml → b.yaml → a.yaml');
    expect(problem).toMatchObject({ file: 'b.yaml', line: 1, path: 'extends' });
  });
});

describe('interpolation', () => {
  const profile = `
services:
  a:
    command: [a]
    port: \${A_PORT:-3000}
    environment: { GREETING: "hello \${WHO}", COST: "$$5" }
  b:
    command: [b]
    environment: { TOKEN: "\${B_TOKEN:?set B_TOKEN}" }
`;
  it('follows Compose rules and types the result', () => {
    const { file } = files({ 'p.yaml': profile });
    const p = loadProfile(file('p.yaml'), { env: { WHO: 'world', B_TOKEN: 't' } });
    expect(p.services.a?.port).toBe(3000);
    expect(p.services.a?.environment).toEqual({ GREETING: 'hello world', COST: '$5' });
  });

  it('reports ${VAR:?message} only for services the run selects', () => {
    const { file } = files({ 'p.yaml': profile });
    const errors = errorsOf(file('p.yaml'), { env: {} });
    expect(errors.map((e) => e.message)).toEqual(['required variable B_TOKEN is missing: set B_TOKEN']);
    expect(errors[0]?.path).toBe('services.b.environment.TOKEN');
    expect(errorsOf(file('p.yaml'), { env: {}, services: ['a'] })).toEqual([]);
  });
});

describe('a value whose interpolation failed', () => {
  it('is reported once, for the variable it lacks, not again by the checks that read it as written', () => {
    const { file } = files({
      'p.yaml':
        'hosts:\n  a: { address: "${A_ADDR:?set A_ADDR}" }\ncoordination: { strategy: peer-to-peer }\ndiscovery: { backend: etcd }\nservices:\n  x: { host: a, command: [x] }\n',
    });
    expect(errorsOf(file('p.yaml'), { env: {} }).map((e) => [e.path, e.message])).toEqual([
      ['hosts.a.address', 'required variable A_ADDR is missing: set A_ADDR'],
    ]);
  });
});

describe('bad input: every problem at once, with positions and paths', () => {
  const bad = `name: Bad_Stack
services:
  database:
    image: postgres
    port: 70000
    healthCheck: { strategy: http, endpoint: /x, interval: -5, retires: 3 }
  pds:
    image: pds
    dependencies:
      - datbase
      - name: redis
        type: optionl
  "../x":
    image: x
  a/b: { image: x }
  UPPER: { image: x }
  loop-a: { image: x, dependencies: [loop-b] }
  loop-b: { image: x, dependencies: [{ name: loop-a, type: soft }] }
`;
  it('lists them all, sorted by position', () => {
    const { file } = files({ 'bad.yaml': bad });
    const errors = errorsOf(file('bad.yaml'), { cwd: file('') });
    const lines = errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.path ?? ''}: ${e.message}`);
    expect(lines).toEqual([
      "bad.yaml:1:7 name: stack name 'Bad_Stack' has upper-case letters; names must be DNS labels (a-z, 0-9, -)",
      'bad.yaml:5:11 services.database.port: must be at most 65535 (got 70000)',
      'bad.yaml:6:60 services.database.healthCheck.interval: must be a non-negative duration (a number of seconds, or 500ms, 30s, 2m, 1h) (got -5)',
      "bad.yaml:6:64 services.database.healthCheck.retires: unknown key 'retires' — did you mean 'retries'?",
      "bad.yaml:10:9 services.pds.dependencies[0]: depends on unknown service 'datbase' — did you mean 'database'?",
      "bad.yaml:12:15 services.pds.dependencies[1].type: 'optionl' is not one of 'required', 'optional', 'soft', 'circular' — did you mean 'optional'?",
      `bad.yaml:13:3 services["../x"]: service name '../x' contains a path separator or dot; names must be DNS labels (a-z, 0-9, -)`,
      `bad.yaml:15:3 services["a/b"]: service name 'a/b' contains a path separator or dot; names must be DNS labels (a-z, 0-9, -)`,
      "bad.yaml:16:3 services.UPPER: service name 'UPPER' has upper-case letters; names must be DNS labels (a-z, 0-9, -)",
      "bad.yaml:17:38 services.loop-a.dependencies[0]: Circular dependency detected: loop-a → loop-b → loop-a (edge types: required, soft; a cycle is allowed only when every edge in it is 'circular')",
    ]);
  });

  it('loadProfile throws InvalidInputError (exit 2) carrying the problems', () => {
    const { file } = files({ 'bad.yaml': bad });
    try {
      loadProfile(file('bad.yaml'));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).exitCode).toBe(2);
      expect((err as InvalidInputError).problems.length).toBeGreaterThan(5);
    }
  });

  it('malformed YAML names the line', () => {
    const { file } = files({ 'm.yaml': 'services:\n  a: { command: [a]\n  b: 1\n' });
    const [e] = errorsOf(file('m.yaml'));
    expect(e?.code).toBe('parse_error');
    expect(e?.line).toBeGreaterThanOrEqual(2);
  });

  it('refuses a YAML alias bomb', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    lines.push('services: {}');
    const { file } = files({ 'bomb.yaml': `${lines.join('\n')}\n` });
    const [e] = errorsOf(file('bomb.yaml'));
    expect(e?.code).toBe('alias_bomb');
  });

  it('wrong types, negative durations, template files outside the folder', () => {
    const { file } = files({
      'p/stack.yaml': `services:
  a:
    command: echo hi there
    stopGracePeriod: "-3s"
    replicas: two
    templates:
      - { destination: x.env, template: ../../etc/passwd }
`,
    });
    const errors = errorsOf(file('p/stack.yaml'), { cwd: file('') });
    // schema and rule problems come together (the command rule no longer waits for the schema)
    expect(errors.map((e) => [e.path, e.code])).toEqual([
      ['services.a.command', 'command_needs_argv'],
      ['services.a.stopGracePeriod', 'invalid_format'],
      ['services.a.replicas', 'invalid_type'],
      ['services.a.templates[0].template', 'template_outside'],
    ]);
  });

  it('unknown profile names suggest the closest built-in', () => {
    const [e] = errorsOf('ful-node');
    expect(e?.message).toMatch(/unknown profile 'ful-node' — did you mean 'full-node'\?/);
  });
});

describe('JSON profiles', () => {
  it('take the fast JSON.parse path but still report positions and duplicate keys', () => {
    const { file } = files({
      'ok.json': JSON.stringify({ services: { a: { command: ['a'], port: 1 } } }, null, 2),
      'bad.json': '{\n  "services": {\n    "a": { "command": ["a"], "prot": 1 }\n  }\n}\n',
      'dup.json': '{ "services": { "a": { "command": ["a"] }, "a": { "command": ["b"] } } }',
      'syntax.json': '{ "services": { "a": }',
    });
    expect(loadProfile(file('ok.json')).services.a?.port).toBe(1);
    expect(errorsOf(file('bad.json'))[0]).toMatchObject({ line: 3, column: 30, path: 'services.a.prot' });
    expect(errorsOf(file('dup.json'))[0]?.message).toMatch(/duplicate key 'a'/);
    expect(errorsOf(file('syntax.json'))[0]?.code).toBe('parse_error');
  });
});
