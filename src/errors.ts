/**
 * Small named error classes, mapped to exit codes in one place (docs/architecture.md, "Errors and exit codes").
 *
 *   0 success · 1 the stack failed · 2 invalid input · 3 infrastructure unreachable · 130 interrupted
 */

export const ExitCode = {
  ok: 0,
  stackFailed: 1,
  invalidInput: 2,
  unreachable: 3,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Where a problem is: a file, a position in it, and the dotted path of the offending value. */
export interface SourceLocation {
  file?: string;
  line?: number;
  column?: number;
}

/** One problem found in user input. `validate` and `render` collect every one before failing. */
export interface Problem extends SourceLocation {
  /** Machine-readable kind, e.g. `unknown_key`, `cycle`, `missing_variable`. */
  code: string;
  /** Dotted path of the offending value, e.g. `services.pds.dependencies[1].type`. */
  path?: string;
  message: string;
  /** Optional hint such as "did you mean 'database'?" (already folded into message where useful). */
  hint?: string;
  severity?: 'error' | 'warning';
}

export function formatLocation(p: SourceLocation): string {
  if (!p.file) return '';
  let out = p.file;
  if (p.line !== undefined) {
    out += `:${p.line}`;
    if (p.column !== undefined) out += `:${p.column}`;
  }
  return out;
}

export function formatProblem(p: Problem): string {
  const where = formatLocation(p);
  const parts = [where, p.path].filter(Boolean).join(' ');
  return parts ? `${parts}: ${p.message}` : p.message;
}

export class StackError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly path?: string;
  constructor(message: string, opts: { code?: string; exitCode?: ExitCode; path?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code ?? 'stack_error';
    this.exitCode = opts.exitCode ?? ExitCode.stackFailed;
    if (opts.path !== undefined) this.path = opts.path;
  }
}

/** Bad user input (profile, template, variables, flags). Carries every problem found. */
export class InvalidInputError extends StackError {
  readonly problems: Problem[];
  constructor(problems: Problem[], summary?: string) {
    const errors = problems.filter((p) => p.severity !== 'warning');
    const head = summary ?? `${errors.length} problem${errors.length === 1 ? '' : 's'} found`;
    super(`${head}:\n${errors.map((p) => `  ${formatProblem(p)}`).join('\n')}`, {
      code: 'invalid_input',
      exitCode: ExitCode.invalidInput,
      ...(errors[0]?.path !== undefined ? { path: errors[0].path } : {}),
    });
    this.problems = problems;
  }
}

/** A usage error on the command line (unknown flag value, missing argument). */
export class UsageError extends StackError {
  constructor(message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(message, { ...opts, code: 'usage', exitCode: ExitCode.invalidInput });
  }
}

/** Infrastructure we need cannot be reached: Docker engine, discovery backend. */
export class UnreachableError extends StackError {
  readonly target: string;
  constructor(target: string, message: string, opts: { cause?: unknown; code?: string } = {}) {
    super(message, { code: opts.code ?? 'unreachable', exitCode: ExitCode.unreachable, cause: opts.cause });
    this.target = target;
  }
}

/** The stack itself failed: a service did not become healthy, a start failed. */
export class StackFailedError extends StackError {
  constructor(message: string, opts: { code?: string; path?: string; cause?: unknown } = {}) {
    super(message, { ...opts, code: opts.code ?? 'stack_failed', exitCode: ExitCode.stackFailed });
  }
}

/** The user interrupted us (SIGINT / SIGTERM). */
export class InterruptedError extends StackError {
  constructor(signal = 'SIGINT') {
    super(`interrupted by ${signal}`, { code: 'interrupted', exitCode: ExitCode.interrupted });
  }
}

/** A backend or runtime asked for something it does not support. */
export class UnsupportedError extends StackError {
  constructor(what: string, capability: string) {
    super(`${what} does not support ${capability}`, { code: 'unsupported', exitCode: ExitCode.invalidInput });
  }
}

/**
 * The file system refused us (a read-only or full disk, a folder we may not write, a path through a
 * file): a one-line message naming the path, never a stack trace. A path the user chose badly is
 * invalid input (2); a disk that is read-only or full is the machine's state (3).
 */
export class FileSystemError extends StackError {
  constructor(message: string, opts: { code: string; exitCode: ExitCode; path?: string; cause?: unknown }) {
    super(message, opts);
  }
}

const FS_CAUSES: Record<string, { what: string; exitCode: ExitCode }> = {
  EROFS: { what: 'the file system is read-only', exitCode: ExitCode.unreachable },
  ENOSPC: { what: 'no space left on the device', exitCode: ExitCode.unreachable },
  EDQUOT: { what: 'the disk quota is exceeded', exitCode: ExitCode.unreachable },
  EIO: { what: 'an input/output error', exitCode: ExitCode.unreachable },
  EACCES: { what: 'permission denied', exitCode: ExitCode.invalidInput },
  EPERM: { what: 'operation not permitted', exitCode: ExitCode.invalidInput },
  ENOTDIR: { what: 'a part of the path is not a folder', exitCode: ExitCode.invalidInput },
  EISDIR: { what: 'it is a folder', exitCode: ExitCode.invalidInput },
  ELOOP: { what: 'too many symlinks', exitCode: ExitCode.invalidInput },
  ENAMETOOLONG: { what: 'the path is too long', exitCode: ExitCode.invalidInput },
  ENOENT: { what: 'no such file or folder', exitCode: ExitCode.invalidInput },
};

/** A Node file-system error (`EROFS`, `EACCES`, …) as a FileSystemError; anything else unchanged. */
export function fileSystemErrorOf(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || err instanceof StackError || typeof e.code !== 'string' || typeof e.syscall !== 'string') return err;
  const cause = FS_CAUSES[e.code];
  if (!cause) return err;
  const where = typeof e.path === 'string' ? ` ${e.path}` : '';
  return new FileSystemError(`cannot ${e.syscall}${where}: ${cause.what} (${e.code})`, {
    code: `fs_${e.code.toLowerCase()}`,
    exitCode: cause.exitCode,
    ...(e.path ? { path: e.path } : {}),
    cause: err,
  });
}

export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof StackError) return err.exitCode;
  return ExitCode.stackFailed;
}
