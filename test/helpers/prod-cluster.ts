/** What the README says prod-cluster needs: its hosts' addresses (the environment) and its secrets (a --vars file). */
import { randomBytes } from 'node:crypto';

/** The environment `stack validate --profile prod-cluster` is documented with. */
export const PROD_CLUSTER_ENV = { PROD_DATA_ADDR: '10.0.0.12', PROD_APP_ADDR: '10.0.0.13', PROD_EDGE_ADDR: '10.0.0.11' } as const;

/** Every secret prod-cluster requires, and how many random bytes (hex) each is made of in the README. */
export const PROD_CLUSTER_SECRETS = {
  postgresPassword: 24,
  pdsJwtSecret: 16,
  pdsAdminPassword: 16,
  pdsDpopSecret: 32,
  pdsRotationKey: 32,
  appviewSigningKey: 32,
  appviewAdminPassword: 16,
  ozoneSigningKey: 32,
  ozoneAdminPassword: 16,
} as const;

/** A --vars file's text with a fresh value for every secret (as the README's commands make it), and the values. */
export function prodClusterVars(): { text: string; values: Record<string, string> } {
  const values = Object.fromEntries(Object.entries(PROD_CLUSTER_SECRETS).map(([name, bytes]) => [name, randomBytes(bytes).toString('hex')]));
  return {
    text: Object.entries(values)
      .map(([k, v]) => `${k}: ${v}\n`)
      .join(''),
    values,
  };
}
