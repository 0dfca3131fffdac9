/**
 * Config templating seam (docs/architecture.md, "The seams"): what templates see, and what rendering produces.
 *
 * Templates are Handlebars in strict mode. Their context is built once per run from the profile's
 * variables, the services' addresses (discovery, or the profile's planned addresses) and the
 * environment; every template of the run is checked against it before anything is written.
 */
import type { Problem } from '../errors.js';
import type { TemplateFormat, VariableType } from '../profile/types.js';
import type { Redactor } from '../util/redact.js';

/** What `{{service.<name>}}` is for a service that is present. */
export interface ServiceView {
  name: string;
  /** `http://host:port` for planned addresses; the first instance's URL from discovery. */
  url: string | null;
  host: string;
  /** Same as `host` (the discovery record's field name). */
  address: string;
  port: number | null;
  tags: string[];
  meta: Record<string, string>;
  /** Every instance (one for planned addresses). */
  instances: InstanceView[];
}

export interface InstanceView {
  id: string;
  host: string;
  address: string;
  port: number | null;
  url: string | null;
  tags: string[];
  meta: Record<string, string>;
}

/**
 * Where a variable's value came from, shown in type errors (`--var port=abc: …`).
 * `label` never holds a secret's value: secret values are masked before a label is made.
 */
export interface VariableOrigin {
  kind: 'default' | 'stored' | 'generated' | 'env' | 'file' | 'flag' | 'library';
  /** e.g. `--var port=abc`, `STACK_VAR_port=abc`, `vars.yaml`, `default`. */
  label: string;
  /** File (and position) for values read from a `--vars` file or the profile's default. */
  file?: string;
  line?: number;
  column?: number;
  /** Dotted path inside that file. */
  path?: string;
}

/** One layer of variable values, e.g. the `--vars` file or the `--var` flags. */
export interface VariableSource {
  origin: VariableOrigin['kind'];
  values: Record<string, unknown>;
  /** Origin label per variable; default `<kind>`. */
  labels?: Record<string, Omit<VariableOrigin, 'kind'>>;
  /** Names the profile does not declare: an error (flags), a warning (files) or ignored (environment). */
  unknown: 'error' | 'warning' | 'ignore';
}

/** The context every template of a run renders against. Build it with `buildTemplateContext`. */
export interface TemplateContext {
  /** What templates see: variables at the top level, `service.<name>`, `env.<NAME>`. */
  readonly root: Readonly<Record<string, unknown>>;
  /** Secret variables' values, by name: for the `secret` helper, file modes and masking. */
  readonly secrets: ReadonlyMap<string, string>;
  /**
   * Every value masked in printed output: the secret variables', environment values whose names
   * look secret, URL passwords found in variables, the environment and discovery records.
   */
  readonly secretValues?: readonly string[];
  /** Declared variables that have no value (their root entry is null); `invalid`: its value had a type error (already reported). */
  readonly missing: ReadonlyMap<string, { required: boolean; invalid?: boolean }>;
  /** Services named by the profile (or a dependency) that are absent (root entry null): why. */
  readonly absent: ReadonlyMap<string, string>;
  /** Variables the profile declares, with their types (for checks and "did you mean"). */
  readonly declared: ReadonlyMap<string, VariableType>;
  /** Problems found while building the context (type errors, unknown `--var` names, …). */
  readonly problems: readonly Problem[];
  /** Folder holding `secrets.json` (read for stored secrets; generated ones are saved there). */
  readonly stateDir: string;
  /** Secret values generated in this run: persist them (`saveSecrets`) so later runs reuse them. */
  readonly generatedSecrets: Readonly<Record<string, string>>;
  /**
   * Masks every secret value in a text (`••••`), in every spelling a format gives it: secret
   * variables, environment variables whose names look secret (`*_TOKEN`, `*_PASSWORD`, …) and the
   * passwords of URLs in variables, the environment and discovery records. `redact.holds(text)`:
   * the text holds one of them (a file holding one is written 0600).
   */
  readonly redact: Redactor;
}

/** One config file rendered for a service. */
export interface RenderedConfig {
  service: string;
  /** Path relative to the service's config folder. */
  destination: string;
  format: TemplateFormat;
  content: string;
  /** `content` with every secret value replaced by `••••`: what may be printed. */
  masked: string;
  mode: number;
  /** The rendering used a secret (the file is written 0600). */
  secret: boolean;
  /** For `env: true` templates: the variables the service's environment gets. */
  env?: Record<string, string>;
}

export interface RenderResult {
  files: RenderedConfig[];
  /** Errors and warnings; no file may be written while any error is present. */
  problems: Problem[];
}
