/**
 * What every driver definition shares (discovery backends, runtimes, health strategies, template
 * formats): its options are described with zod, but zod is handed in by the profile schema when it
 * is built, so a definition loads without zod (the `validate` fast path never loads it).
 */
import type * as Zod from 'zod';

/** The zod namespace, as the profile schema passes it to a definition's `options`. */
export type ZodNamespace = typeof Zod.z;
export type ZodSchema = Zod.ZodType;

/** Option types every definition may reuse, built once by the profile schema. */
export interface SharedOptionTypes {
  /** A number of seconds, or a string with a unit (500ms, 30s, 2m, 1h). */
  duration: ZodSchema;
  /** A TCP/UDP port, 1–65535. */
  port: ZodSchema;
  /** An argv list, or a single string (run through a shell where the caller allows it). */
  argv: ZodSchema;
}

/** The zod schema of every option key a driver owns, one per key of its options type. */
export type OptionSchemas<Options> = (z: ZodNamespace, t: SharedOptionTypes) => { [K in keyof Options & string]-?: ZodSchema };

/** `A | B` → `A & B`: the options of every driver of a registry, as one type. */
export type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/**
 * The option schemas of a list of drivers merged into one shape. Two drivers may share a key
 * (http and tcp both read `host`): the first declaration wins, so shared keys must agree.
 */
export function mergeOptionSchemas(
  drivers: readonly { options: (z: ZodNamespace, t: SharedOptionTypes) => Record<string, ZodSchema> }[],
  z: ZodNamespace,
  t: SharedOptionTypes,
): Record<string, ZodSchema> {
  const shape: Record<string, ZodSchema> = {};
  for (const driver of drivers) {
    for (const [key, schema] of Object.entries(driver.options(z, t))) if (!Object.hasOwn(shape, key)) shape[key] = schema;
  }
  return shape;
}

/** Look a driver up by name in a registry; undefined for a name it does not hold. */
export function findDriver<D extends { name: string }>(drivers: readonly D[], name: string): D | undefined {
  return drivers.find((d) => d.name === name);
}
