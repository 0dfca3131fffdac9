// After tsc: writes schema/profile.schema.json from the zod schema, and compiles it with Ajv into
// dist/profile/fast-validate.cjs, the zod-free fast path of validation (src/profile/fast-check.ts).
// The zod schema takes its driver names and option keys from the registries (discovery backends,
// runtimes, health strategies, output formats), so both outputs follow a new driver by themselves.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { schemas } from '../dist/profile/schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { z, profileSchema } = schemas();
const schema = z.toJSONSchema(profileSchema, { io: 'input', unrepresentable: 'any' });
schema.$id = 'https://unpkg.com/atproto-stacks/schema/profile.schema.json';
schema.title = 'atproto-stacks profile';
mkdirSync(join(root, 'schema'), { recursive: true });
writeFileSync(join(root, 'schema', 'profile.schema.json'), `${JSON.stringify(schema, null, 2)}\n`);

// `starts_with` is zod's annotation; the schema also carries the equivalent `pattern`.
const ajv = new Ajv2020({ code: { source: true, esm: false, optimize: true }, strict: false, allErrors: false, formats: { starts_with: true } });
const validate = ajv.compile(schema);
writeFileSync(join(root, 'dist', 'profile', 'fast-validate.cjs'), standaloneCode(ajv, validate));

// Built-in profiles as JSON (src/profile/precompiled.ts): the YAML is parsed exactly as the loader
// parses it, and stamped with its hash so an edited YAML is never shadowed by a stale copy.
const { parseProfileText } = await import('../dist/profile/source.js');
const { sha256 } = await import('../dist/profile/precompiled.js');
const { builtinProfileNames, builtinProfileFile } = await import('../dist/profile/builtin.js');
mkdirSync(join(root, 'dist', 'profiles'), { recursive: true });
for (const name of builtinProfileNames()) {
  const text = readFileSync(builtinProfileFile(name), 'utf8');
  const parsed = parseProfileText(text, `${name}.yaml`);
  if (parsed.problems.length > 0) throw new Error(`profiles/${name}.yaml: ${parsed.problems[0].message}`);
  writeFileSync(join(root, 'dist', 'profiles', `${name}.json`), JSON.stringify({ sha256: sha256(text), value: parsed.value }));
}

// Last step of the build: test/global-setup.ts compares sources against this stamp.
writeFileSync(join(root, 'dist', '.build-stamp'), `${new Date().toISOString()}\n`);
