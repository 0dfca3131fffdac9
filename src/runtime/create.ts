/**
 * Creating a runtime by name. The definitions (src/drivers/runtime/) say which runtimes exist; the
 * implementation of runtime `<name>` is the module `./<name>.ts` of this folder, found by its name
 * (so adding a runtime needs no second list here), and exports `fromProfile`. It is imported only
 * when a service of the run uses the runtime, so a process-only stack never loads dockerode.
 */
import { runtimeDefinition, type RuntimeCreateContext } from '../drivers/runtime/registry.js';
import type { Runtime } from './types.js';

/** What the module `src/runtime/<name>.ts` of a registered runtime exports as `fromProfile`. */
export type RuntimeFactory<Settings extends object> = (context: RuntimeCreateContext<Settings>) => Promise<Runtime>;

interface RuntimeModule {
  fromProfile: RuntimeFactory<object>;
}

/** The runtime `name`, made from its profile section; an unknown name is an input error, never another runtime. */
export async function createRuntime(name: string, context: RuntimeCreateContext<object>): Promise<Runtime> {
  const definition = runtimeDefinition(name); // throws for a name no definition has: the path below is always a registered one
  const module = (await import(`./${definition.name}.js`)) as Partial<RuntimeModule>;
  if (typeof module.fromProfile !== 'function') throw new Error(`src/runtime/${definition.name}.ts does not export fromProfile`);
  return module.fromProfile(context);
}
