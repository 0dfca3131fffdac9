// Writes schema/profile.schema.json from the zod schema (run after tsc, by `npm run build`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { profileSchema } from '../dist/profile/schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schema = z.toJSONSchema(profileSchema, { io: 'input', unrepresentable: 'any' });
schema.$id = 'https://unpkg.com/atproto-stacks/schema/profile.schema.json';
schema.title = 'atproto-stacks profile';
mkdirSync(join(root, 'schema'), { recursive: true });
writeFileSync(join(root, 'schema', 'profile.schema.json'), `${JSON.stringify(schema, null, 2)}\n`);
