import { spawn } from 'node:child_process';
import { describeAbort, probeSignal } from './timeout.js';
import type { ProbeResult } from './types.js';

export interface ProbeCommandOptions {
  cwd?: string;
  /** Added to our own environment. */
  env?: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
  /** Detail when the program is missing (ENOENT), e.g. "systemctl not found". */
  notFoundDetail?: string;
}

/**
 * Run a probe command from an argv (never through a shell: callers that want one pass
 * `['/bin/sh', '-c', script]` themselves). Exit 0 is healthy. The command runs in its own
 * process group, and on timeout or abort the whole group is killed, so a probe that forked
 * (`sh -c 'curl …'`) leaves nothing behind. Output is discarded: it may echo environment values,
 * and details must never carry secrets.
 */
export function runProbeCommand(argv: readonly string[], opts: ProbeCommandOptions): Promise<ProbeResult> {
  const [program, ...args] = argv;
  if (program === undefined || program === '') return Promise.resolve({ ok: false, detail: 'command check has no command' });
  const signal = probeSignal(opts.signal, opts.timeoutMs);
  if (signal.aborted) return Promise.resolve({ ok: false, detail: describeAbort(signal, opts.timeoutMs) });

  return new Promise<ProbeResult>((resolve) => {
    const child = spawn(program, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: 'ignore',
      detached: true, // own process group, so the timeout kills its children too
    });
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    signal.addEventListener('abort', killGroup, { once: true });
    const finish = (result: ProbeResult) => {
      signal.removeEventListener('abort', killGroup);
      resolve(result);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') finish({ ok: false, detail: opts.notFoundDetail ?? `command not found: ${program}` });
      else finish({ ok: false, detail: `cannot run ${program}: ${err.code ?? err.message}` });
    });
    child.once('exit', (code, sig) => {
      if (signal.aborted) {
        killGroup(); // the leader died from our SIGKILL; make sure no member survived
        finish({ ok: false, detail: describeAbort(signal, opts.timeoutMs) });
      } else if (code === 0) {
        finish({ ok: true, detail: 'exit code 0' });
      } else {
        finish({ ok: false, detail: sig ? `killed by ${sig}` : `exit code ${code}` });
      }
    });
  });
}
