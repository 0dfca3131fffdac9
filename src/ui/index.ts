/**
 * `stack ui` in one call: the page of a stack, served on 127.0.0.1 with a fresh token, fed from
 * the state folder, the runtimes, discovery and the engine's control channel (feed.ts), for
 * `stack ui` and for `stack up --ui` (which hands in its own engine's events and stop).
 */
import { errorText } from '../util/error-text.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import { runtimeSetFor } from '../engine/runtimes.js';
import type { EngineEvent } from '../engine/types.js';
import type { Profile } from '../profile/types.js';
import { createServiceData } from './data.js';
import { createFeed } from './feed.js';
import { createMasker } from './mask.js';
import { startUiServer, type UiServer } from './server.js';

export interface ServeUiOptions {
  profile: Profile;
  stateDir: string;
  cwd: string;
  port?: number;
  /** Secret values to mask (and to re-render with when nothing runs the stack). */
  vars?: string[];
  varsFile?: string;
  /** `stack up --ui`: the engine's own events, and how to stop it. */
  events?: (listener: (event: EngineEvent) => void) => () => void;
  stopOwnEngine?: () => Promise<void>;
  /** Told when discovery cannot be opened (registrations are then not shown). */
  onWarning?: (message: string) => void;
}

export type ServedUi = UiServer;

export async function serveUi(opts: ServeUiOptions): Promise<ServedUi> {
  const { profile, stateDir, cwd } = opts;
  const runtimes = runtimeSetFor(profile, { stateDir });
  const discovery = await openDiscovery(profile, opts.onWarning);
  const masker = createMasker(profile, { stateDir, cwd, ...(opts.vars ? { vars: opts.vars } : {}), ...(opts.varsFile ? { varsFile: opts.varsFile } : {}) });
  const feed = createFeed({ profile, stateDir, cwd, runtimes, ...(discovery ? { discovery } : {}), ...(opts.events ? { events: opts.events } : {}) });
  const data = createServiceData({
    profile,
    stateDir,
    cwd,
    runtimes,
    masker,
    onEvent: (event) => feed.publish(event),
    ...(discovery ? { discovery } : {}),
    ...(opts.stopOwnEngine ? { stopOwnEngine: opts.stopOwnEngine } : {}),
    ...(opts.vars ? { vars: opts.vars } : {}),
    ...(opts.varsFile ? { varsFile: opts.varsFile } : {}),
  });
  let server: UiServer;
  try {
    server = await startUiServer({ feed, data, masker, ...(opts.port !== undefined ? { port: opts.port } : {}) });
  } catch (err) {
    await feed.close();
    await discovery?.close();
    await runtimes.close();
    throw err;
  }
  return {
    port: server.port,
    token: server.token,
    url: server.url,
    async close() {
      await server.close();
      await feed.close();
      await discovery?.close().catch(() => undefined);
      await runtimes.close();
    },
  };
}

async function openDiscovery(profile: Profile, onWarning?: (message: string) => void): Promise<DiscoveryManager | undefined> {
  try {
    const { createDiscovery } = await import('../discovery/index.js');
    return await createDiscovery(profile.discovery);
  } catch (err) {
    onWarning?.(`discovery unavailable, registrations are not shown: ${errorText(err)}`);
    return undefined;
  }
}
