/**
 * The one place `stack ui` masks secrets: everything the server sends — config files, log lines,
 * events, status — goes through a `Masker` first.
 *
 * It masks exactly as the CLI does (src/util/redact.ts): every known secret value, in every
 * spelling an output format gives it, becomes `••••`, as do URL passwords and the values of
 * secret-looking environment variables (the template context's redactor), and whatever the
 * process already knows as secret (`redactOutput`, the CLI's last line of defence). The values known here are those `stack render` would know: the stored
 * secrets (`secrets.json`), `STACK_VAR_*`, and `--var`/`--vars` given to `stack ui` (or to the
 * `stack up --ui` serving the page). A secret given only to a detached `stack up` is not known
 * here: a config file written as holding secrets (mode 0600) then has every value masked, as
 * `stack render --check` shows an old file it cannot compare (`KEY=••••`).
 */
import type { Problem } from '../errors.js';
import type { Profile } from '../profile/types.js';
import { buildTemplateContext } from '../template/context.js';
import { MASK, redactOutput, redactUrlCredentials } from '../util/redact.js';
import { flagSource, varsFileSource } from '../template/variables.js';
import type { VariableSource } from '../template/types.js';

export interface Masker {
  /** Any text: known secret values masked. */
  text(text: string): string;
  /** A rendered config file; `secretFile`: written as holding secrets (mode 0600). */
  configFile(content: string, secretFile: boolean): string;
  /** Secret variables whose value is not known here (their files are masked line by line). */
  readonly unknownSecrets: string[];
}

export interface MaskerOptions {
  stateDir: string;
  cwd: string;
  vars?: string[];
  varsFile?: string;
}

export function createMasker(profile: Profile, opts: MaskerOptions): Masker {
  const secretNames = Object.values(profile.variables)
    .filter((v) => v.type === 'secret')
    .map((v) => v.name);
  const problems: Problem[] = [];
  const sources: VariableSource[] = [
    ...(opts.varsFile ? [varsFileSource(opts.varsFile, opts.cwd, problems)] : []),
    flagSource(opts.vars ?? [], problems, new Set(secretNames)),
  ];
  let redact: (text: string) => string;
  let unknown: string[];
  try {
    const context = buildTemplateContext(profile, { vars: sources, stateDir: opts.stateDir, cwd: opts.cwd, generateSecrets: false });
    redact = context.redact; // its values are also added to the CLI's own last line of defence (redactOutput)
    unknown = secretNames.filter((name) => !context.secrets.has(name));
  } catch {
    // An unreadable secrets.json: no value is known, every secret file is masked whole.
    redact = redactUrlCredentials;
    unknown = secretNames;
  }
  const text = (t: string) => redactOutput(redact(t));
  return {
    text,
    configFile(content, secretFile) {
      const known = text(content);
      if (!secretFile || unknown.length === 0) return known;
      return known.split('\n').map(maskLineValue).join('\n');
    },
    unknownSecrets: unknown,
  };
}

/**
 * A line of a file holding a secret we cannot recognise: `KEY=value` / `key: value` → the key with
 * a masked value; any other line masked whole, its indentation kept. A key is a name followed by
 * `:` or by one `=` (never `==`), so a line of a base64 block (a PEM key's `MIIBab==`) is never
 * taken for a key and a value.
 */
function maskLineValue(line: string): string {
  if (line.trim() === '') return line;
  const m = /^(\s*[A-Za-z_][A-Za-z0-9_.-]*\s*(?:=(?!=)|:)\s*)\S/.exec(line);
  return m ? `${m[1]}${MASK}` : `${/^\s*/.exec(line)![0]}${MASK}`;
}
