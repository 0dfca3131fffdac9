/**
 * `stack logs SERVICE [-f] [-n N]`: a service's output. The instance is found in the state file,
 * else through its runtime; a process service's log file is read even after `stack down`.
 */
import path from 'node:path';
import { ExitCode, UsageError } from '../../errors.js';
import { loadProfile } from '../../profile/load.js';
import type { ServiceHandle } from '../../runtime/types.js';
import { thisHost } from '../host.js';
import { profileRef, type CommonOptions } from '../common.js';
import type { Output } from '../output.js';

interface LogsOptions extends CommonOptions {
  follow?: boolean;
  tail?: string;
}

export async function run(opts: LogsOptions, o: Output, args: string[]): Promise<number> {
  const service = args[0];
  if (!service) throw new UsageError('which service? `stack logs SERVICE`');
  const tail = opts.tail === undefined ? undefined : Number(opts.tail);
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new UsageError(`--tail: '${opts.tail}' is not a number of lines`);
  const profile = loadProfile(profileRef(opts, o));
  const spec = profile.services[service];
  if (!spec) throw new UsageError(`stack '${profile.name}' has no service '${service}'`);

  const { stateDirOf, readStateFile } = await import('../../engine/state.js');
  const { runtimeSetFor } = await import('../../engine/runtimes.js');
  const stateDir = stateDirOf(profile);
  const host = thisHost(profile, undefined);
  const runtimes = runtimeSetFor(profile, { stateDir, ...(host !== undefined ? { host } : {}) });
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const runtime = await runtimes.get(spec.runtime);
    const state = await readStateFile(stateDir, profile.name);
    let handle: ServiceHandle | undefined = state?.services[service]?.handle;
    handle ??= (await runtime.discover(profile.name)).find((h) => h.service === service);
    if (!handle && spec.runtime === 'process') {
      // Stopped: its log file stays where the process runtime wrote it.
      handle = { runtime: 'process', stack: profile.name, service, replica: 0, id: '', startedAt: '', logFile: path.join(stateDir, 'logs', `${service}.log`) };
    }
    if (!handle) {
      o.err(`stack '${profile.name}': '${service}' is not running and has no logs`);
      return ExitCode.ok;
    }
    try {
      for await (const line of runtime.logs(handle, { follow: Boolean(opts.follow), ...(tail !== undefined ? { tail } : {}), signal: interrupt.signal })) {
        o.out(line);
        if (o.gone?.()) break; // `logs -f | head`: the reader left, following on would only print to nobody
      }
    } catch (err) {
      if (!interrupt.signal.aborted) throw err;
    }
    return interrupt.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await runtimes.close();
  }
}
