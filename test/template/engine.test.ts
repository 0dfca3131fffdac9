/** The template engine: the fast parser agrees with Handlebars, caching, and helpers. */
import Handlebars from 'handlebars';
import { describe, expect, it } from 'vitest';
import { compileTemplate, HELPER_NAMES } from '../../src/template/engine.js';
import { parseSimpleTemplate } from '../../src/template/simple-parse.js';

const strip = (ast: unknown) => JSON.parse(JSON.stringify(ast)) as unknown;

describe('parseSimpleTemplate', () => {
  it.each([
    '',
    'plain text',
    '{{a}}',
    'x{{a.b-c}}y',
    'postgres://pg:pw@{{service.postgres.host}}:{{service.postgres.port}}/plc',
    'line one\n  {{hostname}}\n\nthree {{x}}{{y}}\n',
    '{{service.svc-12.url}}',
    'tab\there {{a_b.C9}}\r\n',
  ])('produces the same AST as Handlebars.parse for %j', (source) => {
    const ast = parseSimpleTemplate(source, HELPER_NAMES);
    expect(ast).toBeDefined();
    expect(strip(ast)).toEqual(strip(Handlebars.parse(source)));
  });

  it.each([
    '{{#if a}}x{{/if}}',
    '{{secret "x"}}',
    '{{ a }}',
    '{{~a}}',
    '{{!c}}',
    '\\{{a}}',
    '{{this}}',
    '{{true}}',
    '{{../a}}',
    '{{@root.a}}',
    '{{a.[b]}}',
    'a { b }',
    '{{{a}}}',
    '{{lookup}}',
    '{{else}}',
  ])('leaves %j to Handlebars', (source) => {
    expect(parseSimpleTemplate(source, HELPER_NAMES)).toBeUndefined();
  });
});

describe('compileTemplate', () => {
  it('parses anything else with Handlebars and keeps it cached', () => {
    const a = compileTemplate('{{#if x}}y{{/if}}');
    expect(compileTemplate('{{#if x}}y{{/if}}')).toBe(a);
    expect(a.ast.body[0]?.type).toBe('BlockStatement');
  });

  it('throws Handlebars parse errors', () => {
    expect(() => compileTemplate('{{#if x}}')).toThrow(/Parse error|doesn't match/);
  });
});
