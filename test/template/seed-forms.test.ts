/**
 * Template details users of the seed try: `${name}` (an error showing the `{{name}}` form, for
 * names templates know; other `${…}` stays text), a service's URL scheme, and the profile's
 * domain in the context.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkDeploymentProfile } from '../../src/profile/api.js';
import { dollarBraceProblems } from '../../src/template/dollar-brace.js';
import { renderStackConfigs } from '../../src/template/render.js';
import { runStack } from '../cli/helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stack-seed-forms-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function profileWith(template: { destination: string } & Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return mkDeploymentProfile(
    {
      name: 'forms',
      domain: 'example.test',
      variables: { hostname: 'pds.example.test' },
      services: {
        database: { command: ['true'], port: 5432, scheme: 'postgres' },
        app: { command: ['true'], port: 8080, dependencies: ['database'], templates: [template] },
      },
      ...extra,
    },
    { cwd: dir },
  );
}

const render = (p: ReturnType<typeof profileWith>) => renderStackConfigs(p, { cwd: dir, stateDir: dir, env: {} });

describe('${…} in templates', () => {
  test('${hostname} and ${service.database.url} are errors that show the {{…}} form, at their positions', () => {
    const { problems, files } = render(profileWith({ destination: 'app.env', template: 'A=1\nHOST=${hostname}\nDB=${service.database.url}\n' }));
    expect(files).toEqual([]);
    const found = problems.filter((p) => p.code === 'dollar_brace');
    expect(found.map((p) => p.message)).toEqual([
      "'${hostname}' is not template syntax (it would be copied as it is): write '{{hostname}}'",
      "'${service.database.url}' is not template syntax (it would be copied as it is): write '{{service.database.url}}'",
    ]);
  });

  test('in a template file: file, line and column of the ${', async () => {
    const file = path.join(dir, 'app.conf.hbs');
    await writeFile(file, 'x = 1\n  url = ${service.database.url}\n');
    const p = profileWith({ destination: 'app.conf', format: 'text', template: file });
    const { problems } = render(p);
    expect(problems.find((x) => x.code === 'dollar_brace')).toMatchObject({ line: 2, column: 9 });
    // The same from the static check `stack validate` runs (no template engine, no values needed).
    expect(dollarBraceProblems(p, dir)).toEqual([expect.objectContaining({ file: 'app.conf.hbs', line: 2, column: 9, code: 'dollar_brace' })]);
  });

  test('a data: leaf made only of ${…} is checked too', () => {
    const p = profileWith({ destination: 'app.json', data: { url: '${service.database.url}' } });
    expect(render(p).problems.find((x) => x.code === 'dollar_brace')?.message).toContain("write '{{service.database.url}}'");
    expect(dollarBraceProblems(p, dir)[0]).toMatchObject({ path: 'services.app.templates[0].data.url' });
  });

  test('${…} of a name templates do not know (a shell variable) is text, as before', () => {
    const p = profileWith({ destination: 'run.sh', format: 'text', template: 'echo ${HOME} {{hostname}}\n' });
    const { problems, files } = render(p);
    expect(problems.filter((x) => x.severity !== 'warning')).toEqual([]);
    expect(dollarBraceProblems(p, dir)).toEqual([]);
    expect(files[0]?.content).toBe('echo ${HOME} pds.example.test\n');
  });

  test('stack validate reports it (exit 2), where before the profile was "valid"', async () => {
    const folder = await mkdtemp(path.join(dir, 'cli-'));
    await writeFile(
      path.join(folder, 'stack.yaml'),
      [
        'name: forms',
        'runtime: process',
        'variables: { hostname: pds.example.test }',
        'services:',
        '  app:',
        '    command: ["true"]',
        '    templates:',
        '      - destination: app.env',
        '        template: "HOST=${hostname}\\n"',
        '',
      ].join('\n'),
    );
    const r = await runStack(['validate'], folder);
    expect(r.code).toBe(2);
    expect(r.stderr + r.stdout).toContain("write '{{hostname}}'");
  });
});

describe('scheme and domain', () => {
  test('a service with scheme: postgres has a postgres:// URL in templates', () => {
    const { files, problems } = render(profileWith({ destination: 'app.env', template: 'DB={{service.database.url}}\nAPP={{service.app.url}}\n' }));
    expect(problems.filter((p) => p.severity !== 'warning')).toEqual([]);
    expect(files[0]?.content).toBe('DB=postgres://127.0.0.1:5432\nAPP=http://127.0.0.1:8080\n');
  });

  test('a scheme that is not a URL scheme is invalid input', () => {
    expect(() => profileWith({ destination: 'a.txt', template: '{{domain}}\n' }, { services: { db: { command: ['true'], scheme: 'post gres' } } })).toThrow(
      /scheme/,
    );
  });

  test("the profile's domain is in the context; a variable named domain wins", () => {
    expect(render(profileWith({ destination: 'a.txt', format: 'text', template: 'd={{domain}}' })).files[0]?.content).toBe('d=example.test');
    const own = profileWith({ destination: 'a.txt', format: 'text', template: 'd={{domain}}' }, { variables: { domain: 'mine.test' } });
    expect(render(own).files[0]?.content).toBe('d=mine.test');
  });
});
