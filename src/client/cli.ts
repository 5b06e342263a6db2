// `dalle-serve <command>` (bin/dalle-serve.js, `npm run client --`): a client of a running
// service over its HTTP API. Exit status: 0 done, 1 the service refused or the generation failed
// (`error <code>: <message>` on stderr), 2 wrong arguments, 130 interrupted.
import { ClientError } from './api.js';
import { GLOBAL_USAGE, type Io, UsageError } from './args.js';
import { classify } from './classify.js';
import { generate } from './generate.js';
import { models } from './models.js';
import { get, watch } from './watch.js';

const COMMANDS: Record<string, { summary: string; run: (argv: string[], io: Io) => Promise<number> }> = {
  generate: { summary: 'submit a prompt, follow it, download the kept images', run: generate },
  watch: { summary: "follow a generation's events to the end", run: watch },
  get: { summary: 'print a generation as JSON', run: get },
  classify: { summary: 'classify images against labels', run: classify },
  models: { summary: 'list the model packs the service serves', run: models },
};

const USAGE = `usage: dalle-serve <command> [options]   (dalle-serve <command> --help for its options)

${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(10)} ${summary}`)
  .join('\n')}

${GLOBAL_USAGE}`;

async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    return await command.run(rest, io);
  } catch (error) {
    return report(error, name, io);
  }
}

function report(error: unknown, command: string, { stderr }: Io): number {
  if (error instanceof ClientError) {
    stderr.write(`error ${error.code}: ${error.message}\n`);
    return 1;
  }
  // parseArgs' own refusals (an unknown option, a missing value) are usage errors too.
  const parseArgsError =
    error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS');
  if (error instanceof UsageError || parseArgsError) {
    const help = Object.hasOwn(COMMANDS, command) ? `dalle-serve ${command} --help` : 'dalle-serve --help';
    stderr.write(`error usage: ${error.message}\n(see ${help})\n`);
    return 2;
  }
  stderr.write(`error internal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 1;
}

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
