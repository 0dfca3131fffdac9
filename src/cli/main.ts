/**
 * The `stack` command. Every command's implementation is imported only when it runs, so
 * `stack --help` and `stack validate` never load Docker, etcd, NATS or Consul clients.
 */
import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { ExitCode, exitCodeOf, fileSystemErrorOf, InvalidInputError, StackError } from '../errors.js';
import { addKnownSecrets, secretEnvironmentValues } from '../util/redact.js';
import { collect } from './common.js';
import { createOutput, printProblems, type Output } from './output.js';

/** A command's module. Method syntax: each command narrows `opts` to the options it declares. */
interface CommandModule {
  run(opts: Record<string, unknown>, o: Output, args: string[]): Promise<number>;
}
type Loader = () => Promise<CommandModule>;

const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

function profileOption(cmd: Command): Command {
  return cmd.option('-p, --profile <name|path>', 'built-in profile name or profile file (default: ./stack.yaml)').option('--json', 'machine-readable output');
}

function varOptions(cmd: Command): Command {
  return cmd
    .option('--var <key=value>', 'set a template variable (repeatable)', collect, [])
    .option('--vars <file>', 'read template variables from a YAML or JSON file');
}

export function buildProgram(o: Output, setCode: (code: number) => void): Command {
  const program = new Command('stack')
    .description('Deploy stacks of services from declarative profiles: typed dependency graphs, health-gated startup, discovery, config rendering.')
    .version(version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => (o.write ? o.write(s) : void process.stdout.write(s)), writeErr: (s) => o.err(s.replace(/\n$/, '')) })
    .exitOverride();

  const action = (load: Loader) =>
    async function (this: Command, ...args: unknown[]) {
      const positional = args.slice(0, -2).filter((a): a is string => typeof a === 'string');
      const mod = await load();
      setCode(await mod.run(this.optsWithGlobals(), o, positional));
    };

  varOptions(
    profileOption(program.command('up').description('start the stack, health-gated, as parallel as the graph allows'))
      .option('-d, --detach', 'run the stack under a background supervisor (heartbeats, health, restarts); return once everything is healthy')
      .option('--dry-run', 'print the plan and do nothing (same as `stack plan`)')
      .option('-s, --service <name>', 'start only this service and what it depends on (repeatable)', collect, [])
      .option('--host <name>', 'a profile across hosts: the host this is (default: $STACK_HOST); it starts the services placed on it')
      .addOption(new Option('--on-failure <policy>', 'what to do when a service fails').choices(['rollback', 'leave']).default('rollback'))
      .addOption(new Option('--pull <policy>', 'docker: when to pull images').choices(['missing', 'always', 'never']))
      .option('--ui', 'also serve the live page of `stack ui` while it runs'),
  ).action(action(() => import('./commands/up.js')));

  varOptions(
    profileOption(program.command('ui').description('serve a live page of the stack on 127.0.0.1: graph, states, health, logs, configs, events, actions'))
      .option('--port <port>', 'port (default: any free one)')
      .option('--open', 'open it in a browser'),
  ).action(action(() => import('./commands/ui.js')));

  profileOption(program.command('down').description('stop the stack in reverse dependency order and deregister it'))
    .option('--dry-run', 'say what would be stopped, stop nothing')
    .option('-t, --timeout <seconds>', 'grace period before killing, overriding each service’s own')
    .option('--host <name>', 'a stack across hosts: stop this host’s share (default: STACK_HOST)')
    .option('--all-hosts', 'a stack across hosts: ask every host’s `stack up` to stop its share (through discovery), and wait until it has')
    .action(action(() => import('./commands/down.js')));

  profileOption(program.command('status').description('show every service: state, health, pid/container, uptime, restarts (across hosts: every host’s)'))
    .option('--host <name>', 'a stack across hosts: the host this machine is (default: STACK_HOST)')
    .action(action(() => import('./commands/status.js')));

  profileOption(program.command('logs').description("show a service's output").argument('<service>'))
    .option('-f, --follow', 'keep printing new output')
    .option('-n, --tail <lines>', 'only the last N lines')
    .action(action(() => import('./commands/logs.js')));

  profileOption(program.command('validate').description('check a profile; print every problem with file:line:column and exit 2 if any')).action(
    action(() => import('./commands/validate.js')),
  );

  profileOption(program.command('plan').description('print the start order (waves), health gates, blocked and skipped services'))
    .option('-s, --service <name>', 'plan only this service and what it depends on (repeatable)', collect, [])
    .option('--host <name>', 'a profile across hosts: plan what this host starts, and what it waits for elsewhere (default: $STACK_HOST)')
    .action(action(() => import('./commands/plan.js')));

  profileOption(program.command('graph').description('draw the dependency graph'))
    .addOption(new Option('-f, --format <format>', 'output format').choices(['dot', 'mermaid', 'json']).default('dot'))
    .action(action(() => import('./commands/graph.js')));

  varOptions(
    profileOption(program.command('render').description("render every service's config files from their templates"))
      .option('-o, --out <dir>', 'output folder, or - for stdout', '.stack/<stack>/config')
      .option('-s, --service <name>', 'render only this service (repeatable)', collect, [])
      .option('--check', 'do not write: exit 1 with a diff if the files in --out differ')
      .option('--discovery-snapshot <file>', 'JSON or YAML list of service records standing in for live discovery')
      .option('--dry-run', 'render and report, write nothing')
      .option('--watch', 'keep re-rendering when the discovery records the templates name change (starts nothing)')
      .option('--exec <command>', 'with --watch: run this shell command after a file changed')
      .option('--pid <pid>', 'with --watch: signal this process after a file changed')
      .option('--signal <signal>', 'with --pid: the signal to send', 'SIGHUP'),
  ).action(action(() => import('./commands/render.js')));

  const discovery = program.command('discovery').description('inspect and edit service discovery');
  profileOption(discovery.command('ls').description('list registered instances').argument('[service]')).action(
    action(() => import('./commands/discovery.js').then((m) => ({ run: m.ls }))),
  );
  profileOption(discovery.command('watch').description('print every topology change of a service').argument('<service>')).action(
    action(() => import('./commands/discovery.js').then((m) => ({ run: m.watch }))),
  );
  profileOption(discovery.command('register').description('register an instance by hand').argument('<service>'))
    .requiredOption('--address <host>', 'host or IP')
    .option('--port <port>', 'port')
    .option('--id <id>', 'instance id (default <service>-manual)')
    .option('--url <url>', 'URL')
    .option('--tag <tag>', 'tag (repeatable)', collect, [])
    .option('--ttl <duration>', "lifetime without heartbeats (default: the profile's discovery.ttl)")
    .option('--dry-run', 'say what would be registered')
    .action(action(() => import('./commands/discovery.js').then((m) => ({ run: m.register }))));
  profileOption(discovery.command('deregister').description('remove an instance').argument('<service>').argument('<id>'))
    .option('--dry-run', 'say what would be removed')
    .action(action(() => import('./commands/discovery.js').then((m) => ({ run: m.deregister }))));
  profileOption(discovery.command('test').description('check the configured backends are reachable and writable')).action(
    action(() => import('./commands/discovery.js').then((m) => ({ run: m.test }))),
  );

  const profiles = program.command('profiles').description('list the built-in profiles').option('--json', 'machine-readable output');
  profiles.action(action(() => import('./commands/profiles.js').then((m) => ({ run: m.list }))));
  profiles
    .command('show')
    .description('print a profile, fully merged and normalised')
    .argument('<name|path>')
    .option('--json', 'JSON instead of YAML')
    .action(action(() => import('./commands/profiles.js').then((m) => ({ run: m.show }))));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  // Values of `*_TOKEN`, `*_PASSWORD`, … variables and URL passwords in the environment are masked
  // in everything printed, whichever command or message would show them.
  addKnownSecrets(secretEnvironmentValues(process.env));
  const o = createOutput();
  let code: number = ExitCode.ok;
  const program = buildProgram(o, (c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    code = reportError(err, o);
  }
  process.exitCode = code;
}

function reportError(thrown: unknown, o: Output): number {
  const err = fileSystemErrorOf(thrown);
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    return ExitCode.invalidInput; // commander already printed the message
  }
  if (err instanceof InvalidInputError) {
    const first = err.message.split('\n')[0] ?? 'invalid input';
    o.err(`stack: ${first}`);
    printProblems(o, err.problems);
    return err.exitCode;
  }
  if (err instanceof StackError) {
    o.err(`stack: ${err.message}`);
    return err.exitCode;
  }
  o.err(`stack: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return exitCodeOf(err);
}
