import { runProbeCommand } from './run-command.js';
import type { HealthStrategy } from './types.js';

/** `systemd`: healthy when `systemctl is-active --quiet <unit>` exits 0. */
export function createSystemdStrategy(opts: { systemctl?: string } = {}): HealthStrategy {
  const systemctl = opts.systemctl ?? 'systemctl';
  return {
    name: 'systemd',
    async probe(check, _target, signal) {
      if (!check.unit) return { ok: false, detail: 'systemd check has no unit' };
      const result = await runProbeCommand([systemctl, 'is-active', '--quiet', check.unit], {
        timeoutMs: check.timeoutMs,
        signal,
        notFoundDetail: `${systemctl} not found: systemd checks need a host running systemd`,
      });
      if (result.ok) return { ok: true, detail: `unit ${check.unit} is active` };
      return { ok: false, detail: result.detail.startsWith('exit code') ? `unit ${check.unit} is not active (${result.detail})` : result.detail };
    },
  };
}
