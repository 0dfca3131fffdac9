/**
 * Config templating (docs/architecture.md, "The seams"): strict Handlebars templates, structured (`data:`) or free text,
 * rendered against variables, discovery and the environment; every problem of a run reported at
 * once; secrets generated once, kept 0600 and masked wherever text is printed.
 */
export type { InstanceView, RenderedConfig, RenderResult, ServiceView, TemplateContext, VariableOrigin, VariableSource } from './types.js';
export { buildTemplateContext, contextForService, plannedView, RESERVED_NAMES, type ContextOptions } from './context.js';
export {
  renderTemplate,
  renderStackConfigs,
  renderServiceConfigs,
  renderServiceConfigsInMemory,
  type RenderStackOptions,
  type RenderTemplateOptions,
  type TemplateOutput,
} from './render.js';
export { writeRenderedConfigs, outputPath, type WrittenConfig } from './write.js';
export { checkRenderedConfigs, type CheckOptions, type ConfigDifference } from './check.js';
export { readDiscoverySnapshot } from './snapshot.js';
export { createRedactor, generateSecret, MASK, readSecrets, saveSecrets, SECRETS_FILE, stateDirOf } from './secrets.js';
export { coerceVariable, ENV_PREFIX, environmentSource, flagSource, screamingSnake, varsFileSource } from './variables.js';
export { CODECS, environmentOf, FormatError, OutputSyntaxError, type FormatCodec } from '../formats/index.js';
export { parseEnv, quoteEnvValue, stringifyEnv } from '../formats/env.js';
