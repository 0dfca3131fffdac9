/**
 * scripts/setup.sh installs etcd and NATS without touching anyone's running etcd or NATS: the
 * packages' services are kept from starting (a policy-rc.d during the install), nothing is killed
 * by name. Run against stubs on PATH (dpkg-query, apt-get, id, pkill, killall, systemctl), so no
 * package is installed and nothing is signalled.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const setupScript = fileURLToPath(new URL('../../scripts/setup.sh', import.meta.url));

let dir: string;
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function stub(bin: string, name: string, body: string): Promise<void> {
  await writeFile(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

/** A temp dir with bin/ (for the stubs) and scripts/ (setup.sh, and a start-docker.sh that does nothing). */
async function sandbox(): Promise<{ bin: string; scripts: string }> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'setup-script-'));
  const bin = path.join(dir, 'bin');
  const scripts = path.join(dir, 'scripts');
  await mkdir(bin);
  await mkdir(scripts);
  await copyFile(setupScript, path.join(scripts, 'setup.sh'));
  await writeFile(path.join(scripts, 'start-docker.sh'), 'exit 0\n');
  return { bin, scripts };
}

describe('scripts/setup.sh', () => {
  it('keeps etcd and nats-server from starting during the install, and kills nothing by name', async () => {
    const { bin, scripts } = await sandbox();
    const log = path.join(dir, 'calls.log');
    const policy = path.join(dir, 'policy-rc.d');
    // Only etcd-server and nats-server are missing.
    await stub(bin, 'dpkg-query', 'case "$*" in *etcd-server*|*nats-server*) exit 1 ;; esac; echo "install ok installed"');
    await stub(bin, 'id', 'echo 0');
    await stub(
      bin,
      'apt-get',
      `echo "apt-get $*" >> ${log}
if [ "$1" = install ] || [ "$2" = install ] || echo "$*" | grep -q install; then
  "${policy}" etcd start; echo "policy etcd start -> $?" >> ${log}
  "${policy}" nats-server start; echo "policy nats-server start -> $?" >> ${log}
  "${policy}" docker start; echo "policy docker start -> $?" >> ${log}
fi`,
    );
    for (const name of ['pkill', 'killall', 'kill']) await stub(bin, name, `echo "${name} $*" >> ${log}`);
    await stub(bin, 'systemctl', `echo "systemctl $*" >> ${log}`);

    await run('bash', [path.join(scripts, 'setup.sh')], { env: { PATH: `${bin}:/usr/bin:/bin`, POLICY_RC_D: policy } });
    const calls = (await readFile(log, 'utf8')).trim().split('\n');

    expect(calls.filter((c) => /^(pkill|killall|kill) /.test(c))).toEqual([]);
    expect(calls).toContain('policy etcd start -> 101');
    expect(calls).toContain('policy nats-server start -> 101');
    expect(calls).toContain('policy docker start -> 0');
    // Only the units of the packages it installed, and not stopped by name.
    expect(calls.filter((c) => c.startsWith('systemctl'))).toEqual(['systemctl disable etcd nats-server']);
    expect(existsSync(policy)).toBe(false); // removed after the install
  });

  it('leaves an administrator’s own policy-rc.d alone', async () => {
    const { bin, scripts } = await sandbox();
    const policy = path.join(dir, 'policy-rc.d');
    await writeFile(policy, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    await stub(bin, 'dpkg-query', 'case "$*" in *nats-server*) exit 1 ;; esac; echo "install ok installed"');
    await stub(bin, 'id', 'echo 0');
    await stub(bin, 'apt-get', 'exit 0');
    await stub(bin, 'systemctl', 'exit 0');
    await run('bash', [path.join(scripts, 'setup.sh')], { env: { PATH: `${bin}:/usr/bin:/bin`, POLICY_RC_D: policy } });
    expect(await readFile(policy, 'utf8')).toBe('#!/bin/sh\nexit 0\n');
  });
});
