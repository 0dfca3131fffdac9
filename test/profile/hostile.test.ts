// Input the validator used to let through or choke on (issue 11): each class is rejected as a
// problem naming file, line and path, never a hang, a crash or a silent change of meaning.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { interpolate } from '../../src/profile/interpolate.js';
import { inspectProfile, loadProfile, MAX_PROFILE_BYTES, readRegularFile } from '../../src/profile/load.js';
import { parseDuration } from '../../src/util/duration.js';
import { tmpFiles } from '../helpers/tmp.js';

const tmp = tmpFiles();
afterAll(() => tmp.cleanup());
let n = 0;
function write(text: string, ext = 'yaml'): string {
  const file = tmp.file(`h${n++}.${ext}`);
  writeFileSync(file, text);
  return file;
}
const errorsOf = (file: string, env: Record<string, string> = {}) =>
  inspectProfile(file, { env, cwd: tmp.dir }).problems.filter((p) => p.severity !== 'warning');

describe('extends: only regular files, with a size limit', () => {
  it('refuses /dev/zero, as a profile and as a parent', () => {
    const child = write('extends: /dev/zero\nservices: {}\n');
    const [e] = errorsOf(child);
    expect(e).toMatchObject({ code: 'profile_not_found', path: 'extends', line: 1 });
    expect(e?.message).toMatch(/not a regular file/);
    expect(errorsOf('/dev/zero')[0]?.message).toMatch(/not a regular file/);
  });

  it('refuses a FIFO without blocking on it', () => {
    const fifo = tmp.file('pipe.yaml');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const child = write(`extends: ./pipe.yaml\nservices: {}\n`);
    const [e] = errorsOf(child);
    expect(e?.message).toMatch(/not a regular file/);
  });

  it('reads no more than the size limit', () => {
    const file = write('x'.repeat(64));
    expect(() => readRegularFile(file, 63)).toThrow(/larger than 63 bytes/);
    expect(readRegularFile(file, 64)).toHaveLength(64);
    expect(MAX_PROFILE_BYTES).toBeGreaterThanOrEqual(4 * 1024 * 1024); // 10,000 services are ~1.6 MB
  });

  it('refuses a template that is not a regular file (template: ".")', () => {
    const file = write('services:\n  a: { command: [a], templates: [{ destination: x.txt, template: "." }] }\n');
    expect(errorsOf(file)).toMatchObject([{ code: 'template_not_file', path: 'services.a.templates[0].template', line: 2 }]);
  });
});

describe('large and deep input', () => {
  // 60,000 keys (~1 MB): the duplicate-key check was quadratic (38 s). Both the fast path (valid)
  // and the positioned path (a duplicate to report) must be linear; the test timeout guards it.
  const keys = (dup: boolean) => {
    const lines = ['services:', '  a:', '    command: [a]', '    environment:'];
    for (let i = 0; i < 60_000; i++) lines.push(`      KEY_${i}: value-${i}`);
    if (dup) lines.push('      KEY_7: again');
    return `${lines.join('\n')}\n`;
  };
  it('60,000 keys load, and a duplicate among them is found with its line', () => {
    expect(Object.keys(loadProfile(write(keys(false))).services.a!.environment)).toHaveLength(60_000);
    const errors = errorsOf(write(keys(true)));
    expect(errors).toMatchObject([{ code: 'duplicate_key', line: 60_005 }]);
  }, 30_000);

  it('very deep nesting is a problem, not a stack overflow', () => {
    const deep = 200_000;
    const yaml = write(`services:\n  a: { command: [a], templates: [{ destination: a.json, data: ${'['.repeat(deep)}${']'.repeat(deep)} }] }\n`);
    expect(errorsOf(yaml)).toMatchObject([{ code: 'too_deep', line: 2 }]);
    const json = write(
      `{"services": {"a": {"command": ["a"], "templates": [{"destination": "a.json", "data": ${'['.repeat(deep)}${']'.repeat(deep)}}]}}}`,
      'json',
    );
    expect(errorsOf(json)).toMatchObject([{ code: 'too_deep', line: 1 }]);
    const block = write(
      `services:\n  a:\n    command: [a]\n    templates:\n      - destination: a.json\n        data:\n${Array.from({ length: 150 }, (_, i) => `${'  '.repeat(i + 5)}k:`).join('\n')} 1\n`,
    );
    expect(errorsOf(block)[0]?.code).toBe('too_deep');
  });
});

describe('durations a timer can honour', () => {
  it('refuses beyond ~24.8 days, zero intervals and .inf, never falling back to a default', () => {
    const file = write(`discovery: { heartbeatInterval: 720h, ttl: 1000h }
coordination: { dependencyTimeout: 720h }
services:
  a: { command: [a], port: 1, healthCheck: { strategy: tcp, interval: 0, timeout: .inf }, stopGracePeriod: 30d }
`);
    const got = errorsOf(file).map((e) => [e.path, e.code]);
    expect(got).toEqual(
      expect.arrayContaining([
        ['discovery.heartbeatInterval', 'invalid_duration'],
        ['discovery.ttl', 'invalid_duration'],
        ['coordination.dependencyTimeout', 'invalid_duration'],
        ['services.a.healthCheck.interval', 'invalid_duration'],
        ['services.a.healthCheck.timeout', 'invalid_number'],
      ]),
    );
    expect(got.some(([p]) => p === 'services.a.stopGracePeriod')).toBe(true);
    expect(parseDuration('720h')).toBeUndefined();
    expect(parseDuration('24h')).toBe(86_400_000);
  });
});

describe('duplicate keys never silently replace a value', () => {
  it('JSON: "w\\u0065b" next to web', () => {
    const file = write('{\n  "services": {\n    "web": { "command": ["a"] },\n    "w\\u0065b": { "command": ["b"] }\n  }\n}\n', 'json');
    expect(errorsOf(file)).toMatchObject([{ code: 'duplicate_key', line: 4 }]);
  });
  it('YAML: 123 next to "123"', () => {
    const file = write('services:\n  a:\n    command: [a]\n    environment:\n      123: x\n      "123": y\n');
    expect(errorsOf(file)).toMatchObject([{ code: 'duplicate_key', line: 6 }]);
  });
  it('JSON with trailing commas is not JSON', () => {
    const file = write('{\n  "services": {\n    "a": { "command": ["a"], },\n  }\n}\n', 'json');
    expect(errorsOf(file)).toMatchObject([{ code: 'parse_error', line: 3 }]);
  });
});

describe('TOML problems name a line', () => {
  it('in inline tables, dotted keys and arrays of tables', () => {
    const file = write(
      'name = "t"\n[services.web]\ncommand = ["a"]\nhealthCheck = { strategy = "bogus" }\n[services.db]\ncommand = ["b"]\nprot = 1\n[[services.db.templates]]\ndestination = "a.json"\nformat = "nope"\n',
      'toml',
    );
    const got = errorsOf(file).map((e) => [e.path, e.line]);
    expect(got).toEqual([
      ['services.web.healthCheck.strategy', 4],
      ['services.db.prot', 7],
      ['services.db.templates[0].format', 10],
    ]);
  });
});

describe('interpolation keeps what the user wrote', () => {
  const file = () =>
    write(`services:
  a:
    command: [a]
    port: \${PORT:-3000}
    environment: { VERSION: "\${APP_VERSION}", ID: "\${ID}", FLAG: "\${FLAG}", NAME: "\${toString:-x}" }
`);
  it('strings stay strings; typed fields are converted', () => {
    const p = loadProfile(file(), { env: { APP_VERSION: '1.10', ID: '12345678901234567890', FLAG: 'true' } });
    expect(p.services.a?.environment).toEqual({ VERSION: '1.10', ID: '12345678901234567890', FLAG: 'true', NAME: 'x' });
    expect(p.services.a?.port).toBe(3000);
  });
  it('fields that take a number (or a duration given as one) or a boolean get one', () => {
    const f = write('services:\n  a: { command: [a], stopGracePeriod: "${G:-30}", init: "${I:-false}", environment: { G: "${G:-30}" } }\n');
    const p = loadProfile(f, { env: {} });
    expect(p.services.a).toMatchObject({ stopGracePeriodMs: 30_000, init: false, environment: { G: '30' } });
  });

  it('no prototype lookups', () => {
    expect(interpolate('${toString:-x}/${constructor}/${__proto__:-y}', {})).toBe('x//y');
  });
});

describe('values that up or render would reject later', () => {
  const cases: [string, string, string][] = [
    ['NUL in argv', '  a: { command: ["a\\0"] }\n', 'services.a.command[0]'],
    ['empty command', '  a: { command: "" }\n', 'services.a.command'],
    ['docker command string with spaces', '  a: { image: x, command: "sh -c x" }\n', 'services.a.command'],
    ['docker entrypoint string with spaces', '  a: { image: x, entrypoint: "tini --" }\n', 'services.a.entrypoint'],
    ['unknown stop signal', '  a: { command: [a], stopSignal: SIGNOPE }\n', 'services.a.stopSignal'],
    ['non-loopback health host', '  a: { command: [a], port: 1, healthCheck: { strategy: tcp, host: example.com } }\n', 'services.a.healthCheck.host'],
    ['env name with =', '  a: { command: [a], environment: { "A=B": x } }\n', 'services.a.environment["A=B"]'],
    ['env name with a newline', '  a: { command: [a], environment: { "A\\nB": x } }\n', 'services.a.environment["A\\nB"]'],
    ['impossible port string', '  a: { image: x, ports: ["70000:80"] }\n', 'services.a.ports[0]'],
    [
      '0.0.0.0:P next to 127.0.0.1:P',
      '  a: { image: x, ports: ["127.0.0.1:9000:80"] }\n  b: { image: x, ports: ["0.0.0.0:9000:80"] }\n',
      'services.b.ports[0]',
    ],
    ['NaN number', '  a: { image: x, resources: { cpus: .nan } }\n', 'services.a.resources.cpus'],
    ['address with a newline', '  a: { command: [a], address: "a\\nb" }\n', 'services.a.address'],
    [
      'template destination sub/..',
      '  a: { command: [a], templates: [{ destination: sub/.., format: json, data: {} }] }\n',
      'services.a.templates[0].destination',
    ],
  ];
  for (const [what, services, at] of cases) {
    it(what, () => {
      const errors = errorsOf(write(`services:\n${services}`));
      expect(
        errors.find((e) => e.path === at && e.file && e.line),
        JSON.stringify(errors),
      ).toBeDefined();
    });
  }
  it('a javascript: URL default', () => {
    const errors = errorsOf(write('variables: { home: { type: url, default: "javascript:alert(1)" } }\nservices: { a: { command: [a] } }\n'));
    expect(errors).toMatchObject([{ path: 'variables.home.default', line: 1 }]);
  });
});
