/** Checking templates before rendering: every problem at once, with positions and suggestions. */
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.js';
import { buildTemplateContext } from '../../src/template/context.js';
import { renderStackConfigs, renderTemplate } from '../../src/template/render.js';
import type { TemplateSpec } from '../../src/profile/types.js';
import { profileIn } from './helpers.js';

const STACK = `
name: demo
runtime: process
variables:
  hostname: { type: string, required: true }
  port: { type: number, default: 3000 }
  dbPassword: { type: secret, required: true }
  tagline: { type: string }
services:
  database: { command: [postgres], port: 5432, tags: [db], meta: { version: "16" } }
  redis: { command: [redis-server], port: 6379, enable: false }
  pds:
    command: [node, pds.js]
    port: 3000
    dependencies: [database, { name: redis, type: optional }, { name: cache, type: optional }]
    templates:
      - destination: pds.env
        template: templates/pds.env.hbs
`;

const inline = (template: string, format: TemplateSpec['format'] = 'text'): TemplateSpec => ({ destination: 'x', format, template, env: false, index: 0 });

function render(template: string, vars: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const { dir, profile } = profileIn(STACK, { 'templates/pds.env.hbs': 'PDS=1\n' });
  const context = buildTemplateContext(profile, { vars, env, secrets: {}, cwd: dir });
  return renderTemplate(inline(template), context, { cwd: dir });
}

describe('checking templates against the context', () => {
  it('lists every missing variable of every template at once, each with file:line:column', () => {
    const { dir, profile } = profileIn(
      STACK.replace(
        'template: templates/pds.env.hbs',
        'template: templates/pds.env.hbs\n      - destination: more.json\n        data: { a: "{{hostname}}", b: "{{secret \\"dbPassword\\"}}" }',
      ),
      { 'templates/pds.env.hbs': 'A=1\nPDS_HOSTNAME={{hostname}}\nPDS_DB={{service.datbase.url}}\nB={{hostname}} {{ tagline }}\n' },
    );
    const { files, problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {} });
    expect(files).toEqual([]);
    const lines = problems.map(formatProblem);
    expect(lines).toEqual([
      "templates/pds.env.hbs:2:16: Required variable 'hostname' is missing: give it in a --vars file or as STACK_VAR_HOSTNAME, or with --var hostname=…",
      "templates/pds.env.hbs:3:18: Unknown service 'datbase' — did you mean 'database'?",
      "templates/pds.env.hbs:4:5: Required variable 'hostname' is missing: give it in a --vars file or as STACK_VAR_HOSTNAME, or with --var hostname=…",
      "templates/pds.env.hbs:4:19: Variable 'tagline' has no value (give it a default, or set it with --var tagline=…)",
      expect.stringMatching(
        /^stack\.yaml:\d+:\d+ services\.pds\.templates\[1\]\.data\.a: Required variable 'hostname' is missing: give it in a --vars file or as STACK_VAR_HOSTNAME, or with --var hostname=…$/,
      ),
      expect.stringMatching(
        /^stack\.yaml:\d+:\d+ services\.pds\.templates\[1\]\.data\.b: Required variable 'dbPassword' is missing: give it in a --vars file or as STACK_VAR_DB_PASSWORD$/,
      ),
    ]);
    expect(problems.every((p) => p.severity === 'error')).toBe(true);
  });

  it('a whole-stack render names a required variable even when no template uses it', () => {
    const { dir, profile } = profileIn(STACK, { 'templates/pds.env.hbs': 'A=1\n' });
    const { problems } = renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {} });
    expect(problems.map(formatProblem)).toEqual([
      expect.stringMatching(
        /^stack\.yaml:5:\d+ variables\.hostname: Required variable 'hostname' is missing: give it in a --vars file or as STACK_VAR_HOSTNAME, or with --var hostname=…$/,
      ),
      expect.stringMatching(
        /^stack\.yaml:7:\d+ variables\.dbPassword: Required variable 'dbPassword' is missing: give it in a --vars file or as STACK_VAR_DB_PASSWORD$/,
      ),
    ]);
    // Rendering only some services asks only for what their templates use.
    expect(renderStackConfigs(profile, { cwd: dir, env: {}, secrets: {}, services: ['pds'] }).problems).toEqual([]);
  });

  it('suggests the closest name for unknown variables, services, fields and secrets', () => {
    const out = render('{{hostnme}} {{service.databse.url}} {{service.database.hots}} {{secret "dbPasword"}} {{@roots}}', { hostname: 'h', dbPassword: 'p' });
    expect(out.problems.map((p) => `${p.line}:${p.column} ${p.message}`)).toEqual([
      "1:3 Unknown variable 'hostnme' — did you mean 'hostname'?",
      "1:23 Unknown service 'databse' — did you mean 'database'?",
      "1:56 Service 'database' has no field 'hots' — did you mean 'host'?",
      "1:72 Unknown secret 'dbPasword' — did you mean 'dbPassword'?",
      "1:88 Unknown data variable '@roots' (available: @root, @index, @key, @first, @last)",
    ]);
  });

  it('reports unknown helpers at compile position, and a secret asked for by a non-secret name', () => {
    const out = render('{{uppercase hostname}}\n{{secret "hostname"}}', { hostname: 'h', dbPassword: 'p' });
    expect(out.problems.map((p) => `${p.line}:${p.column} ${p.code}`)).toEqual(['1:3 unknown_helper', '2:10 not_a_secret']);
  });

  it('treats an absent optional service as falsy: guarded uses render, unguarded ones are errors', () => {
    const ok = render(
      '{{#if service.redis}}R={{service.redis.url}}{{else}}no redis{{/if}};{{#unless service.cache}}no cache{{/unless}};{{#with service.redis}}{{url}}{{/with}}',
      {
        hostname: 'h',
        dbPassword: 'p',
      },
    );
    expect(ok.problems).toEqual([]);
    expect(ok.content).toBe('no redis;no cache;');

    const bad = render('{{service.redis.url}} {{service.cache.host}}', { hostname: 'h', dbPassword: 'p' });
    expect(bad.problems.map((p) => p.message)).toEqual([
      "Service 'redis' is absent (disabled): guard its use with {{#if service.redis}}",
      "Service 'cache' is absent (not in the profile): guard its use with {{#if service.cache}}",
    ]);
  });

  it('follows #each, #with, block params and ../ as the runtime does', () => {
    const out = render(
      '{{#each service.database.instances as |inst i|}}{{i}}={{inst.url}} {{../hostname}} {{inst.nope}}{{/each}}{{#with service.database}}{{port}} {{meta.version}} {{metaa}}{{/with}}',
      { hostname: 'h', dbPassword: 'p' },
    );
    expect(out.problems.map((p) => p.message)).toEqual(["'nope' is not defined in 'inst'", "'metaa' is not defined in 'this' — did you mean 'meta'?"]);
    expect(out.content).toBe('');
  });

  it('iterates over every service, skipping absent ones with #if this', () => {
    const out = render('{{#each service}}{{#if this}}{{@key}}={{url}};{{/if}}{{/each}}', { hostname: 'h', dbPassword: 'p' });
    expect(out.problems).toEqual([]);
    expect(out.content).toBe('database=http://127.0.0.1:5432;pds=http://127.0.0.1:3000;');
  });

  it('lets #if test environment variables and meta keys that are not set', () => {
    const out = render(
      '{{#if env.DEBUG}}debug{{/if}}{{#if service.database.meta.replica}}r{{/if}}[{{env.HOME_DIR}}]',
      { hostname: 'h', dbPassword: 'p' },
      { HOME_DIR: '/home/x' },
    );
    expect(out.problems).toEqual([]);
    expect(out.content).toBe('[/home/x]');
  });

  it('refuses to print an object, and partials', () => {
    const out = render('{{service.database}}\n{{> header}}', { hostname: 'h', dbPassword: 'p' });
    expect(out.problems.map((p) => p.code)).toEqual(['not_a_value', 'unsupported']);
  });

  it('reports template syntax errors with their line', () => {
    const out = render('A=1\nB={{#if hostname}}x\n', { hostname: 'h', dbPassword: 'p' });
    expect(out.problems).toHaveLength(1);
    expect(out.problems[0]).toMatchObject({ code: 'template_syntax', message: expect.stringMatching(/^template syntax: Expecting .*got 'EOF'$/) });
    expect(out.problems[0]!.line).toBeGreaterThanOrEqual(2);
  });
});

describe('prototype access stays off', () => {
  for (const expr of [
    '{{constructor.name}}',
    '{{__proto__}}',
    '{{hostname.constructor}}',
    '{{service.constructor.name}}',
    '{{@root.constructor}}',
    '{{toString}}',
  ]) {
    it(`${expr} is an error and never renders a prototype's contents`, () => {
      const out = render(expr, { hostname: 'h', dbPassword: 'p' });
      expect(out.problems.length).toBeGreaterThan(0);
      expect(out.content).not.toMatch(/function|Object|native code|\[object/);
    });
  }

  it('lookup cannot reach prototypes either', () => {
    const out = render('[{{lookup this "constructor"}}][{{lookup service "__proto__"}}]', { hostname: 'h', dbPassword: 'p' });
    expect(out.problems).toEqual([]);
    expect(out.content).toBe('[][]');
  });
});
