// `stack validate` on hostile input: exit 2 naming file:line:column and path, nothing thrown;
// warnings alone print and exit 0.
import { afterAll, describe, expect, it } from 'vitest';
import { runStack } from '../helpers/cli.js';
import { tmpFiles } from '../helpers/tmp.js';

const t = tmpFiles({
  'hostile.yaml': [
    'extends: ./base.yaml',
    'coordination: { dependencyTimeout: 720h }',
    'services:',
    '  web: { image: x, command: "node server.js", ports: ["0.0.0.0:8080:80"], stopSignal: SIGNOPE, prot: 1 }',
    '  api: { image: x, ports: ["127.0.0.1:8080:80"], environment: { "PATH=/tmp/evil": x }, dependencies: [off] }',
    '  off: { image: x, enable: false }',
    '',
  ].join('\n'),
  'base.yaml': 'services: {}\n',
  'zero.yaml': 'extends: /dev/zero\nservices: {}\n',
  'deep.json': `{"services": {"a": {"command": ["a"], "templates": [{"destination": "a.json", "data": ${'['.repeat(100_000)}${']'.repeat(100_000)}}]}}}`,
  'warn.yaml': 'services:\n  a: { command: [a], ports: [8080] }\n',
});
afterAll(() => t.cleanup());

describe('stack validate', () => {
  it('reports schema and rule problems of hostile input together, exit 2', async () => {
    const r = await runStack(['validate', '-p', 'hostile.yaml'], { cwd: t.dir });
    expect(r.code).toBe(2);
    for (const line of [
      'hostile.yaml:2:36 coordination.dependencyTimeout:',
      'hostile.yaml:4:29 services.web.command:',
      'hostile.yaml:4:87 services.web.stopSignal:',
      'hostile.yaml:4:96 services.web.prot:',
      'hostile.yaml:5:28 services.api.ports[0]:',
      'hostile.yaml:5:65 services.api.environment["PATH=/tmp/evil"]:',
      'hostile.yaml:5:103 services.api.dependencies[0]:',
    ]) {
      expect(r.stderr).toContain(line);
    }
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('refuses /dev/zero and very deep nesting cleanly', async () => {
    const zero = await runStack(['validate', '-p', 'zero.yaml'], { cwd: t.dir });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('zero.yaml:1:10 extends: profile path is not a regular file');
    const deep = await runStack(['validate', '-p', 'deep.json'], { cwd: t.dir });
    expect(deep.code).toBe(2);
    expect(deep.stderr).toMatch(/deep\.json:1:\d+: mappings and lists are nested more than 100 levels deep/);
  });

  it('warnings alone: printed, exit 0', async () => {
    const r = await runStack(['validate', '-p', 'warn.yaml'], { cwd: t.dir });
    expect(r.code).toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/warn\.yaml:2:\d+ services\.a\.ports: 'ports' has no effect on a process service/);
    expect(r.stdout).toContain('1 warning');
  });
});
