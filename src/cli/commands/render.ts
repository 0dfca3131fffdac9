/**
 * `stack render`: render every selected service's config files, offline.
 *
 *   --out DIR   write `<DIR>/<service>/<destination>` (default `.stack/<stack>/config`); `-` prints
 *   --check     write nothing; exit 1 with a diff when DIR differs (content, mode, missing, extra)
 *   --dry-run   write nothing; list what would be written, with sizes and modes
 * Every problem of every template is reported at once and nothing is written (exit 2). Secret
 * values never reach the terminal: printed content, diffs and messages show `••••`.
 */
import path from 'node:path';
import { ExitCode, InvalidInputError, UsageError, type Problem } from '../../errors.js';
import { loadProfile } from '../../profile/load.js';
import type { Profile } from '../../profile/types.js';
import { checkRenderedConfigs, type ConfigDifference } from '../../template/check.js';
import { renderStackConfigs } from '../../template/render.js';
import { readDiscoverySnapshot } from '../../template/snapshot.js';
import { saveSecrets, SECRETS_FILE, stateDirOf } from '../../template/secrets.js';
import type { RenderedConfig, VariableSource } from '../../template/types.js';
import { flagSource, varsFileSource } from '../../template/variables.js';
import { outputPath, writeRenderedConfigs } from '../../template/write.js';
import { didYouMean } from '../../util/suggest.js';
import { profileRef, type CommonOptions } from '../common.js';
import { paint, printProblems, type Output } from '../output.js';

export interface RenderOptions extends CommonOptions {
  out?: string;
  service?: string[];
  check?: boolean;
  discoverySnapshot?: string;
  var?: string[];
  vars?: string;
  dryRun?: boolean;
  /** `--watch`: keep the files following discovery (render-watch.ts), with `--exec` or `--pid`/`--signal`. */
  watch?: boolean;
  exec?: string;
  pid?: string;
  signal?: string;
}

/** The default of `--out` as declared in main.ts: the stack's state folder. */
const DEFAULT_OUT = '.stack/<stack>/config';

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

export async function run(opts: RenderOptions, o: Output): Promise<number> {
  if (opts.watch) return (await import('./render-watch.js')).run(opts, o);
  const cwd = process.cwd();
  const selected = opts.service && opts.service.length > 0 ? [...new Set(opts.service)] : undefined;
  const profile = loadProfile(profileRef(opts, o), selected ? { services: selected } : {});
  const unknown = (selected ?? []).filter((s) => !profile.services[s]);
  if (unknown.length > 0) {
    throw new UsageError(unknown.map((s) => `unknown service '${s}'${didYouMean(s, Object.keys(profile.services))}`).join('; '));
  }
  if (opts.check && opts.out === '-') throw new UsageError('--check compares against a folder: give --out DIR, not -');

  const problems: Problem[] = [];
  const secretNames = new Set(
    Object.values(profile.variables)
      .filter((v) => v.type === 'secret')
      .map((v) => v.name),
  );
  const sources: VariableSource[] = [];
  if (opts.vars) sources.push(varsFileSource(opts.vars, cwd, problems));
  sources.push(flagSource(opts.var ?? [], problems, secretNames));
  const snapshot = opts.discoverySnapshot ? readDiscoverySnapshot(opts.discoverySnapshot, cwd) : undefined;
  if (snapshot) problems.push(...snapshot.problems);

  const stateDir = stateDirOf(profile, cwd);
  const result = renderStackConfigs(profile, {
    ...(selected ? { services: selected } : {}),
    ...(snapshot ? { instances: snapshot.instances } : {}),
    vars: sources,
    stateDir,
    cwd,
  });
  problems.push(...result.problems);
  const errors = problems.filter((p) => p.severity !== 'warning');
  if (errors.length > 0)
    throw new InvalidInputError(problems, `cannot render stack '${profile.name}': ${errors.length} problem${errors.length === 1 ? '' : 's'}, nothing written`);
  if (!opts.json) printProblems(o, problems);

  const { files, context } = result;
  const generated = Object.keys(context.generatedSecrets);
  if (opts.out === '-') return printFiles(files, o, opts, profile);

  const outDir = path.resolve(cwd, outOption(opts.out, profile, stateDir));
  const services =
    selected ??
    Object.values(profile.services)
      .filter((s) => s.enable)
      .map((s) => s.name);
  if (opts.check) {
    // Secrets made up for this check (none stored) cannot match the files: compare around them.
    const unknownSecrets = Object.values(context.generatedSecrets);
    const differences = await checkRenderedConfigs(files, outDir, { services, redact: context.redact, unknownSecrets });
    reportCheck(differences, outDir, o, opts, generated.length > 0 ? path.join(stateDir, SECRETS_FILE) : undefined);
    return differences.length > 0 ? ExitCode.stackFailed : ExitCode.ok;
  }
  if (opts.dryRun) return reportDryRun(files, outDir, generated, stateDir, o, opts);

  // Generated secrets first: a config written with a secret that was then lost would never match again.
  await saveSecrets(stateDir, { ...context.generatedSecrets });
  const written = await writeRenderedConfigs(files, outDir);
  if (opts.json) {
    o.json({ stack: profile.name, outDir, generatedSecrets: generated, files: written.map((w) => ({ ...w, mode: octal(w.mode) })) });
    return ExitCode.ok;
  }
  o.out(`rendered ${written.length} file${written.length === 1 ? '' : 's'} for stack '${profile.name}' into ${displayDir(outDir, cwd)}`);
  for (const w of written)
    o.out(`  ${path.join(w.service, w.destination)}  ${paint(o, 'gray', `${w.bytes} bytes, mode ${octal(w.mode)}${w.secret ? ', holds secrets' : ''}`)}`);
  if (generated.length > 0)
    o.out(`generated secret${generated.length === 1 ? '' : 's'} ${generated.join(', ')} (kept in ${displayDir(path.join(stateDir, SECRETS_FILE), cwd)})`);
  return ExitCode.ok;
}

function outOption(out: string | undefined, profile: Profile, stateDir: string): string {
  if (out === undefined || out === DEFAULT_OUT) return path.join(stateDir, 'config');
  return out.replaceAll('<stack>', profile.name);
}

function displayDir(dir: string, cwd: string): string {
  const rel = path.relative(cwd, dir);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : dir;
}

/** `--out -`: the files on stdout, secrets masked (stdout ends up in CI logs). */
function printFiles(files: RenderedConfig[], o: Output, opts: RenderOptions, profile: Profile): number {
  if (opts.json) {
    o.json({
      stack: profile.name,
      files: files.map((f) => ({ service: f.service, destination: f.destination, format: f.format, mode: octal(f.mode), secret: f.secret, content: f.masked })),
    });
    return ExitCode.ok;
  }
  const many = files.length > 1;
  for (const f of files) {
    if (many) o.out(paint(o, 'gray', `# ==> ${f.service}/${f.destination} (mode ${octal(f.mode)}) <==`));
    o.out(f.masked.endsWith('\n') ? f.masked.slice(0, -1) : f.masked);
  }
  return ExitCode.ok;
}

function reportDryRun(files: RenderedConfig[], outDir: string, generated: string[], stateDir: string, o: Output, opts: RenderOptions): number {
  const cwd = process.cwd();
  const rows = files.map((f) => ({
    service: f.service,
    destination: f.destination,
    path: outputPath(outDir, f),
    bytes: Buffer.byteLength(f.content),
    mode: octal(f.mode),
    secret: f.secret,
    ...(f.env ? { environment: Object.keys(f.env) } : {}),
  }));
  if (opts.json) {
    o.json({ dryRun: true, outDir, files: rows, generatedSecrets: generated });
    return ExitCode.ok;
  }
  o.out(`would write ${rows.length} file${rows.length === 1 ? '' : 's'} into ${displayDir(outDir, cwd)} (dry run: nothing written)`);
  for (const r of rows)
    o.out(`  ${path.join(r.service, r.destination)}  ${paint(o, 'gray', `${r.bytes} bytes, mode ${r.mode}${r.secret ? ', holds secrets' : ''}`)}`);
  if (generated.length > 0)
    o.out(`would generate secret${generated.length === 1 ? '' : 's'} ${generated.join(', ')} (kept in ${displayDir(path.join(stateDir, SECRETS_FILE), cwd)})`);
  return ExitCode.ok;
}

function reportCheck(differences: ConfigDifference[], outDir: string, o: Output, opts: RenderOptions, freshSecretsFile: string | undefined): void {
  const cwd = process.cwd();
  if (opts.json) {
    o.json({
      ok: differences.length === 0,
      outDir,
      differences: differences.map((d) => ({
        ...d,
        ...(d.expectedMode !== undefined ? { expectedMode: octal(d.expectedMode) } : {}),
        ...(d.actualMode !== undefined ? { actualMode: octal(d.actualMode) } : {}),
      })),
    });
    return;
  }
  if (differences.length === 0) {
    o.out(`configs in ${displayDir(outDir, cwd)} are up to date`);
    return;
  }
  for (const d of differences) {
    const name = path.join(d.service, d.destination);
    if (d.status === 'extra') o.out(paint(o, 'yellow', `extra file: ${name} (no template renders it)`));
    else if (d.status === 'mode') o.out(paint(o, 'yellow', `mode of ${name} is ${octal(d.actualMode ?? 0)}, expected ${octal(d.expectedMode ?? 0)}`));
    else {
      if (d.status === 'missing') o.out(paint(o, 'yellow', `missing file: ${name}`));
      o.out(colorPatch(d.patch ?? '', o).trimEnd());
    }
  }
  o.err(`${differences.length} difference${differences.length === 1 ? '' : 's'} between ${displayDir(outDir, cwd)} and the rendered configs`);
  if (freshSecretsFile) o.err(`note: no stored secrets (${displayDir(freshSecretsFile, cwd)}): generated secret values were not compared`);
}

function colorPatch(patch: string, o: Output): string {
  if (!o.color) return patch;
  return patch
    .split('\n')
    .map((l) => (l.startsWith('+') && !l.startsWith('+++') ? paint(o, 'green', l) : l.startsWith('-') && !l.startsWith('---') ? paint(o, 'red', l) : l))
    .join('\n');
}
