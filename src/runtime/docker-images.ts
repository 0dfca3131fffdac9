/**
 * Making sure the images a stack needs are present, per each service's `pull` policy:
 * `never` — must already be there; `missing` — pulled only when absent; `always` — pulled every time.
 * Several services sharing an image cause one pull, under the most eager policy among them.
 */
import type Dockerode from 'dockerode';
import { StackFailedError, UnreachableError } from '../errors.js';
import type { ServiceSpec } from '../profile/types.js';
import { dockerErrorMessage, isNotFound } from './docker-errors.js';

export type PullProgress = (service: string, line: string) => void;

type PullPolicy = ServiceSpec['pull'];
const EAGERNESS: Record<PullPolicy, number> = { never: 0, missing: 1, always: 2 };

interface ImageNeed {
  image: string;
  policy: PullPolicy;
  /** Services that use the image; progress is reported for the first, errors name them all. */
  services: string[];
}

export function imageNeeds(services: ServiceSpec[]): ImageNeed[] {
  const byImage = new Map<string, ImageNeed>();
  for (const s of services) {
    if (!s.image) continue;
    const need = byImage.get(s.image);
    if (!need) byImage.set(s.image, { image: s.image, policy: s.pull, services: [s.name] });
    else {
      need.services.push(s.name);
      if (EAGERNESS[s.pull] > EAGERNESS[need.policy]) need.policy = s.pull;
    }
  }
  return [...byImage.values()];
}

export interface LocalImage {
  id: string;
  /** The image's own HEALTHCHECK, when it has one. */
  healthcheck?: Dockerode.HealthConfig;
}

/** What the engine knows of the image, or undefined when it does not have it. */
export async function localImage(docker: Dockerode, image: string): Promise<LocalImage | undefined> {
  try {
    const info = await docker.getImage(image).inspect();
    const healthcheck = info.Config?.Healthcheck;
    // `NONE` is how an image switches off a HEALTHCHECK it inherited.
    const active = healthcheck?.Test && healthcheck.Test.length > 0 && healthcheck.Test[0] !== 'NONE';
    return { id: info.Id, ...(active ? { healthcheck } : {}) };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function ensureImages(docker: Dockerode, services: ServiceSpec[], opts: { signal?: AbortSignal; onPullProgress?: PullProgress }): Promise<void> {
  for (const need of imageNeeds(services)) {
    opts.signal?.throwIfAborted();
    const present = (await localImage(docker, need.image)) !== undefined;
    const who = need.services.map((s) => `'${s}'`).join(', ');
    if (need.policy === 'never') {
      if (!present) {
        throw new StackFailedError(`image ${need.image} (service ${who}) is not present on the Docker engine and pull is 'never'`, {
          code: 'image_missing',
          path: `services.${need.services[0]}.image`,
        });
      }
      continue;
    }
    if (need.policy === 'missing' && present) continue;
    try {
      await pullImage(docker, need.image, (line) => opts.onPullProgress?.(need.services[0] ?? need.image, line), opts.signal);
    } catch (cause) {
      const message = `cannot pull image ${need.image} (service ${who}): ${dockerErrorMessage(cause)}`;
      // A registry we cannot reach is infrastructure (exit 3); a missing image or refused access is not.
      if (REGISTRY_UNREACHABLE.test(dockerErrorMessage(cause))) throw new UnreachableError('registry', message, { cause, code: 'registry_unreachable' });
      throw new StackFailedError(message, { code: 'image_pull_failed', path: `services.${need.services[0]}.image`, cause });
    }
  }
}

const REGISTRY_UNREACHABLE = /no such host|dial tcp|connection refused|i\/o timeout|TLS handshake timeout|network is unreachable|Client.Timeout/i;

interface PullEvent {
  id?: string;
  status?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Pull with one progress line per event. The engine reports some failures inside the stream. */
async function pullImage(docker: Dockerode, image: string, onLine: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const stream = await docker.pull(image, signal ? { abortSignal: signal } : {});
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(err) : resolve()),
      (event: PullEvent) => {
        if (event.error) {
          reject(new Error(event.errorDetail?.message ?? event.error));
          return;
        }
        const line = [event.id ? `${event.id}:` : '', event.status ?? '', event.progress ?? ''].filter(Boolean).join(' ');
        if (line) onLine(line);
      },
    );
  });
}
