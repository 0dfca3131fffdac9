/**
 * Rendering templates: every template of a run is checked against the context (all problems at
 * once), rendered, serialised (`data:`) or parsed back (`template:`), and only then handed to a
 * writer — so a failing run writes nothing.
 *
 * Counterparts of the ATproto stacks builders: `renderTemplate` ~ mkConfigTemplate /
 * processTemplateWithDiscovery, `renderStackConfigs` ~ generateStackConfigs.
 */
import { errorText } from '../util/error-text.js';
import path from 'node:path';
import { InvalidInputError, type Problem } from '../errors.js';
import { formatPath, type PathSegment } from '../profile/source.js';
import type { Profile, TemplateSpec } from '../profile/types.js';
import type { RenderedFile } from '../runtime/types.js';
import { didYouMean } from '../util/suggest.js';
import { analyzeTemplate, missingRequired, type Locate } from './analyze.js';
import { buildTemplateContext, contextForService, type ContextOptions } from './context.js';
import { compileTemplate, runTemplate, type RenderState } from './engine.js';
import { CODECS, environmentOf, FormatError, OutputSyntaxError, type FormatCodec } from '../formats/index.js';
import { displayContext, showMasked } from './display.js';
import { createProfileLocator, displayPath, type ProfileLocator } from './locate.js';
import { MASK, saveSecrets } from './secrets.js';
import { structureDifference, tameContext } from './structure.js';
import type { RenderedConfig, RenderResult, TemplateContext } from './types.js';
import { writeFileInside } from './write.js';

export interface RenderTemplateOptions {
  /** The service the template belongs to: its profile path is `services.<service>.templates[i]`. */
  service?: string;
  /** Positions in the profile, for `data:` leaves and inline templates. */
  locate?: ProfileLocator;
  /** Folder template file names are shown relative to; default process.cwd(). */
  cwd?: string;
}

export interface TemplateOutput {
  content: string;
  /** The rendering used a secret. */
  secret: boolean;
  problems: Problem[];
}

const hasErrors = (problems: readonly Problem[]) => problems.some((p) => p.severity !== 'warning');
const FILE_MODE = 0o644;
const SECRET_MODE = 0o600;

/** Render one template against a context: checked, rendered, serialised or parsed back. */
export function renderTemplate(spec: TemplateSpec, context: TemplateContext, opts: RenderTemplateOptions = {}): TemplateOutput {
  const cwd = opts.cwd ?? process.cwd();
  const base: PathSegment[] = opts.service !== undefined ? ['services', opts.service, 'templates', spec.index] : ['templates', spec.index];
  const locate: ProfileLocator = opts.locate ?? ((segs) => ({ path: formatPath(segs) }));
  const renderer = new TemplateRenderer(context);
  const codec = CODECS[spec.format];

  if (spec.data !== undefined) {
    const tree = renderer.tree(spec.data, [...base, 'data'], locate);
    if (hasErrors(renderer.problems)) return renderer.result('');
    try {
      return renderer.result(codec.serialize(tree));
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      renderer.problems.push({
        code: 'invalid_data',
        severity: 'error',
        ...locate([...base, 'data', ...err.path]),
        message: `${err.message} (format ${spec.format})`,
      });
      return renderer.result('');
    }
  }

  if (spec.template === undefined) {
    renderer.problems.push({
      code: 'empty_template',
      severity: 'error',
      ...locate(base),
      message: 'a template needs `data` (a structured tree) or `template` (free text)',
    });
    return renderer.result('');
  }
  const file = spec.templateFile ? displayPath(spec.templateFile, cwd) : undefined;
  // A template file: positions inside it. Inline in a profile: the profile position of the string.
  // Inline without a profile (library use): positions inside the template text.
  const where: Locate = file
    ? (loc) => ({ file, ...(loc ? { line: loc.line, column: loc.column } : {}) })
    : opts.locate
      ? () => locate([...base, 'template'])
      : (loc) => (loc ? { line: loc.line, column: loc.column } : {});
  const content = renderer.text(spec.template, where);
  if (content === undefined) return renderer.result('');
  if (spec.format !== 'text') {
    let parsed: unknown;
    try {
      parsed = codec.parse(content);
    } catch (err) {
      if (!(err instanceof OutputSyntaxError)) throw err;
      renderer.problems.push({ code: 'invalid_output', severity: 'error', ...where(undefined), message: outputMessage(codec.label, content, err, context) });
      return renderer.result(content);
    }
    const injected = injectedKeys(spec.template, codec, parsed, context);
    if (injected) renderer.problems.push({ code: 'value_changes_structure', severity: 'error', ...where(undefined), message: injected });
  }
  return renderer.result(content);
}

/**
 * Whether a value, rather than the template, decided a key of free-text output: the same template
 * rendered against a tame context (see structure.ts) must have the same key paths.
 */
function injectedKeys(source: string, codec: FormatCodec, parsed: unknown, context: TemplateContext): string | undefined {
  const tame = tameParse(source, codec, context);
  if (tame === NO_TEXT) return undefined;
  if (tame === UNPARSABLE) {
    // Without the template's own structure there is nothing to compare with: a value that made the
    // text parse (`\n:` after `name: `) is exactly what an injection looks like.
    return `the rendered ${codec.label} parses only with these values, so whether a value changes its structure cannot be checked: use a \`data:\` template (escaped by construction)`;
  }
  const { added, removed } = structureDifference(parsed, tame);
  if (added.length === 0 && removed.length === 0) return undefined;
  // A key made from part of a secret must not be shown either.
  const secrets = [...context.secrets.values()];
  const show = (k: string) => {
    const last = k.split('.').pop() ?? k;
    return last.length >= 3 && secrets.some((v) => v.includes(last)) ? MASK : context.redact(k);
  };
  const list = (keys: string[]) =>
    keys
      .slice(0, 5)
      .map((k) => `'${show(k)}'`)
      .join(', ') + (keys.length > 5 ? ', …' : '');
  const what = [added.length > 0 ? `adds ${list(added)}` : '', removed.length > 0 ? `removes ${list(removed)}` : ''].filter(Boolean).join(' and ');
  return `a value ${what} in the rendered ${codec.label}: values in free text are not escaped — use a \`data:\` template (escaped by construction), or check the value`;
}

const NO_TEXT = Symbol('no text');
const UNPARSABLE = Symbol('unparsable');

/** The template rendered against a tame context, parsed: harmless characters first, letters and digits if that does not parse. */
function tameParse(source: string, codec: FormatCodec, context: TemplateContext): unknown {
  for (const level of ['harmless', 'alphanumeric'] as const) {
    const tameText = new TemplateRenderer(tameContext(context, level)).text(source, () => ({}));
    if (tameText === undefined) return NO_TEXT;
    try {
      return codec.parse(tameText);
    } catch {
      /* try the stricter one */
    }
  }
  return UNPARSABLE;
}

/** Collects problems and secret use while one template's strings render. */
class TemplateRenderer {
  readonly problems: Problem[] = [];
  private usedSecret = false;

  constructor(private readonly context: TemplateContext) {}

  /** Render a template string; undefined when it has problems (they are recorded). */
  text(source: string, where: Locate): string | undefined {
    const out = this.render(source, where);
    return out === undefined ? undefined : out.text;
  }

  /**
   * Render every string leaf of a `data:` tree; a leaf that is exactly `{{path}}` keeps a number or
   * boolean typed. `at` is the leaf's profile path, one array pushed and popped along the walk
   * (problems are reported synchronously, so it is read only while it points at the leaf).
   */
  tree(value: unknown, at: PathSegment[], locate: ProfileLocator): unknown {
    if (typeof value === 'string') {
      if (!value.includes('{{') && !value.includes('${')) return value;
      const out = this.render(value, () => locate([...at]));
      if (!out) return value;
      const sole = out.sole?.value;
      return typeof sole === 'number' || typeof sole === 'boolean' ? sole : out.text;
    }
    if (Array.isArray(value)) {
      return value.map((v, i) => {
        at.push(i);
        const r = this.tree(v, at, locate);
        at.pop();
        return r;
      });
    }
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        at.push(k);
        out[k] = this.tree(v, at, locate);
        at.pop();
      }
      return out;
    }
    return value;
  }

  private render(source: string, where: Locate): { text: string; sole?: { value: unknown } } | undefined {
    let compiled;
    try {
      compiled = compileTemplate(source);
    } catch (err) {
      this.problems.push({ code: 'template_syntax', severity: 'error', ...where(syntaxPosition(err)), message: `template syntax: ${syntaxMessage(err)}` });
      return undefined;
    }
    const analysis = analyzeTemplate(compiled.ast, this.context, where);
    this.usedSecret ||= analysis.usesSecret;
    if (analysis.problems.length > 0) {
      this.problems.push(...analysis.problems);
      return undefined;
    }
    if (analysis.output !== undefined) return { text: analysis.output, ...(analysis.sole ? { sole: analysis.sole } : {}) };
    const state: RenderState = { secrets: this.context.secrets, usedSecret: false };
    try {
      const text = runTemplate(compiled, this.context.root, state);
      this.usedSecret ||= state.usedSecret;
      return { text, ...(analysis.sole ? { sole: analysis.sole } : {}) };
    } catch (err) {
      // Strict mode caught what the analysis did not foresee; Handlebars gives the position.
      const e = err as { lineNumber?: number; column?: number };
      const loc = e.lineNumber !== undefined ? { line: e.lineNumber, column: (e.column ?? 0) + 1 } : undefined;
      const message = this.context.redact(firstLine(err).replace(/ - \d+:\d+$/, ''));
      this.problems.push({ code: 'render_error', severity: 'error', ...where(loc), message });
      return undefined;
    }
  }

  result(content: string): TemplateOutput {
    const secret = this.usedSecret || containsSecret(content, this.context);
    return { content, secret, problems: this.problems };
  }
}

/** The content holds a secret value in any spelling: a secret variable, a `*_TOKEN` environment value, a URL's password. */
function containsSecret(content: string, context: TemplateContext): boolean {
  for (const v of context.secrets.values()) if (v.length > 0 && content.includes(v)) return true;
  return context.redact.holds(content);
}

function firstLine(err: unknown): string {
  return errorText(err).split('\n')[0] ?? '';
}

/** "Parse error on line 2:\n<source>\n---^\nExpecting 'ID', got 'EOF'" → its last line; others without the " - 1:5" suffix. */
function syntaxMessage(err: unknown): string {
  const lines = errorText(err).split('\n');
  const text = /^Parse error/.test(lines[0] ?? '') && lines.length > 1 ? lines[lines.length - 1]! : (lines[0] ?? '');
  return text.replace(/ - \d+:\d+$/, '');
}

/** Handlebars parse errors: "Parse error on line 3:" (and a jison hash with the column). */
function syntaxPosition(err: unknown): { line: number; column: number } | undefined {
  const e = err as { hash?: { loc?: { first_line?: number; first_column?: number } }; lineNumber?: number; column?: number };
  if (e.hash?.loc?.first_line !== undefined) return { line: e.hash.loc.first_line, column: (e.hash.loc.first_column ?? 0) + 1 };
  if (e.lineNumber !== undefined) return { line: e.lineNumber, column: (e.column ?? 0) + 1 };
  const m = /on line (\d+)/.exec(firstLine(err));
  return m ? { line: Number(m[1]), column: 1 } : undefined;
}

/** "rendered ENV does not parse: output line 3 `FOO BAR`: expected '=' after FOO", secrets masked. */
function outputMessage(label: string, content: string, err: OutputSyntaxError, context: TemplateContext): string {
  const lineText = err.line !== undefined ? (content.split('\n')[err.line - 1] ?? '') : '';
  const shown = context.redact(lineText.length > 120 ? `${lineText.slice(0, 117)}…` : lineText);
  const at = err.line !== undefined ? ` at output line ${err.line} \`${shown}\`` : '';
  return `rendered output is not valid ${label}${at}: ${context.redact(err.message)}`;
}

/**
 * A file's printable form: rendered again with every secret a token (display.ts), so masking does
 * not depend on the format's spelling; the real content, redacted, if that rendering fails.
 */
function maskedContent(spec: TemplateSpec, context: TemplateContext, content: string, opts: RenderTemplateOptions): string {
  const shown = renderTemplate(spec, displayContext(context), opts);
  return hasErrors(shown.problems) ? context.redact(content) : showMasked(shown.content, context);
}

/**
 * The file with `masked` computed when first read: only printing needs it, and a render for
 * `stack up` (thousands of files) should not pay a second rendering per secret file.
 */
function withMasked(file: Omit<RenderedConfig, 'masked'>, mask: () => string): RenderedConfig {
  let masked: string | undefined;
  return Object.defineProperty(file, 'masked', { enumerable: true, get: () => (masked ??= mask()) }) as RenderedConfig;
}

export interface RenderStackOptions extends ContextOptions {
  /** Services whose templates render; default every enabled service. */
  services?: string[];
  /** A context built beforehand (else built from the other options). */
  context?: TemplateContext;
}

/**
 * Render the config files of a stack's services. Returns every file and every problem; nothing is
 * written here (see `writeRenderedConfigs`), and no file may be written while any error is present.
 */
export function renderStackConfigs(profile: Profile, opts: RenderStackOptions = {}): RenderResult & { context: TemplateContext } {
  const cwd = opts.cwd ?? process.cwd();
  const locate = opts.locate ?? createProfileLocator(profile, cwd);
  const context = opts.context ?? buildTemplateContext(profile, { ...opts, locate });
  const problems: Problem[] = [...context.problems];
  const files: RenderedConfig[] = [];
  const names =
    opts.services ??
    Object.values(profile.services)
      .filter((s) => s.enable)
      .map((s) => s.name);

  for (const name of names) {
    const svc = profile.services[name];
    if (!svc) {
      problems.push({ code: 'unknown_service', severity: 'error', message: `Unknown service '${name}'${didYouMean(name, Object.keys(profile.services))}` });
      continue;
    }
    const own = svc.templates.length > 0 ? contextForService(context, svc) : context;
    for (const spec of svc.templates) {
      const out = renderTemplate(spec, own, { service: name, locate, cwd });
      problems.push(...out.problems);
      if (hasErrors(out.problems)) continue;
      const file = withMasked(
        {
          service: name,
          destination: spec.destination,
          format: spec.format,
          content: out.content,
          mode: out.secret ? SECRET_MODE : (spec.mode ?? FILE_MODE),
          secret: out.secret,
        },
        () => (out.secret ? maskedContent(spec, own, out.content, { service: name, locate, cwd }) : out.content),
      );
      if (spec.env) {
        try {
          file.env = environmentOf(spec.format, out.content);
        } catch (err) {
          problems.push({
            code: 'invalid_env_template',
            severity: 'error',
            ...locate(['services', name, 'templates', spec.index, 'env']),
            message: context.redact(firstLine(err)),
          });
          continue;
        }
      }
      files.push(file);
    }
  }
  // A whole-stack render also names required variables no template happened to use.
  if (opts.services === undefined) {
    for (const [name, { required, invalid }] of context.missing) {
      if (!required || invalid || problems.some((p) => p.code === 'missing_variable' && p.message.includes(`'${name}'`))) continue;
      const secret = profile.variables[name]?.type === 'secret';
      problems.push({ code: 'missing_variable', severity: 'error', ...locate(['variables', name]), message: missingRequired(name, secret) });
    }
  }
  return { files, problems, context };
}

/**
 * What the engine calls just before a service starts: render its templates (all checked first),
 * write them under `configDir` (atomic; 0600 when a secret was used), and return the files and the
 * environment its `env: true` templates add. Generated secrets are saved first, so every later
 * run renders the same values. Throws InvalidInputError listing every problem; writes nothing then.
 */
const isInside = (root: string | undefined, dir: string): root is string => {
  if (root === undefined) return false;
  const rel = path.relative(path.resolve(root), path.resolve(dir));
  return !rel.startsWith('..') && !path.isAbsolute(rel);
};

export async function renderServiceConfigs(
  profile: Profile,
  serviceName: string,
  context: TemplateContext,
  configDir: string,
): Promise<{ files: (RenderedFile & { hostPath: string })[]; environment: Record<string, string> }> {
  const { files, environment } = await renderServiceFiles(profile, serviceName, context);
  const written: (RenderedFile & { hostPath: string })[] = [];
  for (const f of files) {
    const hostPath = await writeFileInside(configDir, f.destination, f.content, f.mode, isInside(context.stateDir, configDir) ? context.stateDir : configDir);
    written.push({ hostPath, destination: f.destination, mode: f.mode });
  }
  return { files: written, environment };
}

/**
 * The same render for a runtime that takes configs in memory (`capabilities.configsInMemory`,
 * Swarm): the files' content is handed over and nothing of them is written on this machine.
 */
export async function renderServiceConfigsInMemory(
  profile: Profile,
  serviceName: string,
  context: TemplateContext,
): Promise<{ files: (RenderedFile & { content: Buffer })[]; environment: Record<string, string> }> {
  const { files, environment } = await renderServiceFiles(profile, serviceName, context);
  return { files: files.map((f) => ({ destination: f.destination, mode: f.mode, content: Buffer.from(f.content) })), environment };
}

/** Render one service's templates (all checked first) and save generated secrets; writes no config file. */
async function renderServiceFiles(
  profile: Profile,
  serviceName: string,
  context: TemplateContext,
): Promise<{ files: RenderedConfig[]; environment: Record<string, string> }> {
  const { files, problems } = renderStackConfigs(profile, { services: [serviceName], context });
  if (hasErrors(problems)) throw new InvalidInputError(problems, `cannot render the configs of '${serviceName}'`);
  await saveSecrets(context.stateDir, { ...context.generatedSecrets });
  const environment: Record<string, string> = {};
  for (const f of files) Object.assign(environment, f.env ?? {});
  return { files, environment };
}
