/**
 * Health checks: one strategy per file, each a factory returning a plain object; `strategyFor`
 * picks the default instance by name. Waiting for readiness and monitoring afterwards live in
 * `monitor.ts`.
 */
export {
  describeHealthCheck,
  HEALTH_STRATEGIES,
  HEALTH_STRATEGY_NAMES,
  healthStrategyDefinition,
  strategyFor,
  type HealthCheckSpec,
  type HealthStrategyName,
} from './registry.js';
export { createCommandStrategy } from './command.js';
export { createDockerStrategy } from './docker.js';
export { createFileStrategy } from './file.js';
export { createHttpStrategy, type HttpStrategyOptions } from './http.js';
export { createSystemdStrategy } from './systemd.js';
export { createTcpStrategy, type TcpStrategyOptions } from './tcp.js';
export { HealthCheckFailedError, monitorHealth, probeOnce, waitUntilHealthy } from './monitor.js';
export type { MonitorOptions, ProbeInfo, WaitOptions } from './monitor.js';
export type { ContainerHealth, HealthCheckCommon, HealthStrategy, HealthStrategyDefinition, HealthTarget, ProbeResult } from './types.js';
