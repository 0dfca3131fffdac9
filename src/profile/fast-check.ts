/**
 * The fast path of validation. At build time the zod schema's JSON Schema is compiled by Ajv into
 * standalone code (`dist/profile/fast-validate.cjs`, by scripts/gen-schema.mjs). A profile it
 * accepts is valid as far as the schema goes, so the common case never loads zod; anything it
 * rejects goes through zod for precise messages. Running from source (tests), it is absent and
 * zod does all the work. A test checks the two agree.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { PACKAGE_ROOT } from './builtin.js';

type Validator = (value: unknown) => boolean;
let validator: Validator | null | undefined;

export const FAST_VALIDATOR_FILE = path.join(PACKAGE_ROOT, 'dist', 'profile', 'fast-validate.cjs');

/** true: valid per the schema; false: invalid; undefined: no compiled validator here. */
export function fastValidate(value: unknown): boolean | undefined {
  if (validator === undefined) {
    try {
      const loaded = createRequire(import.meta.url)(FAST_VALIDATOR_FILE) as Validator | { default: Validator };
      validator = typeof loaded === 'function' ? loaded : loaded.default;
    } catch {
      validator = null;
    }
  }
  return validator ? validator(value) : undefined;
}
