import { describe, expect, it } from 'vitest';
import { envFormat } from '../../src/formats/drivers/env.js';
import { CODECS, environmentOf, FORMATS, formatFromDestination } from '../../src/formats/index.js';
import { iniFormat } from '../../src/formats/drivers/ini.js';
import { jsonFormat } from '../../src/formats/drivers/json.js';
import { textFormat } from '../../src/formats/drivers/text.js';
import { tomlFormat } from '../../src/formats/drivers/toml.js';
import { yamlFormat } from '../../src/formats/drivers/yaml.js';
import { schemas } from '../../src/profile/schema.js';
import { describeFormatCases } from './format.case.js';

const tree = { name: 'pds', port: 2583, debug: false, hosts: ['a', 'b'], db: { url: 'postgres://x' } };

describeFormatCases(jsonFormat, { sample: { ...tree, none: null }, broken: { text: '{\n  "a": 1,\n  ]\n}', line: 3 } });
describeFormatCases(yamlFormat, { sample: { ...tree, none: null }, broken: { text: 'a: 1\nb: [\n', line: 3 } });
describeFormatCases(tomlFormat, { sample: tree, broken: { text: 'a = 1\nb = = 2\n', line: 2 } });
describeFormatCases(iniFormat, {
  sample: { top: 'x', section: { key: 'value with = sign', n: '1' } },
  broken: { text: 'a=1\n[unclosed\n', line: 2 },
  stringly: true,
  lineOriented: true,
});
describeFormatCases(envFormat, {
  sample: { PDS_PORT: '2583', SECRET: "it's $HOME" },
  broken: { text: 'A=1\nnot a line\n', line: 2 },
  stringly: true,
  lineOriented: true,
});
describeFormatCases(textFormat, { sample: 'anything {\n  goes\n}\n' });

describe('the registry of formats', () => {
  it('the profile schema takes its format names from the definitions', () => {
    const { templateSchema } = schemas();
    for (const f of FORMATS) expect(templateSchema.safeParse({ destination: 'x', format: f.name }).success).toBe(true);
    expect(templateSchema.safeParse({ destination: 'x', format: 'xml' }).success).toBe(false);
  });

  it('a destination no format claims is text; `.env` and `*.env` are env', () => {
    expect(formatFromDestination('Caddyfile')).toBe('text');
    expect(formatFromDestination('.env')).toBe('env');
    expect(formatFromDestination('deploy/prod.env')).toBe('env');
    expect(formatFromDestination('a/B.YML')).toBe('yaml');
  });

  it('CODECS has every format, and env: true needs a structured one', () => {
    expect(Object.keys(CODECS).sort()).toEqual(FORMATS.map((f) => f.name).sort());
    expect(environmentOf('toml', 'A = 1\n')).toEqual({ A: '1' });
    expect(() => environmentOf('text', 'A=1')).toThrow(/structured format .*not text/);
  });
});
