import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isRoutingError, type RoutingError } from '../lib/errors.js';
import { isUndecodableDocument } from '../lib/storage/jsonDocuments.js';
import { aggregateCommand, aggregateUsage } from './commands/aggregate.js';
import { archiveCommand, archiveUsage } from './commands/archive.js';
import { checkCommand, checkUsage } from './commands/check.js';
import { checkRoutesCommand, checkRoutesUsage } from './commands/checkRoutes.js';
import { decodeCommand, decodeUsage } from './commands/decode.js';
import { dlqCommand, dlqUsage } from './commands/dlq.js';
import { infraCommand, infraUsage } from './commands/infra.js';
import { quarantineCommand, quarantineUsage } from './commands/quarantine.js';
import { queryCommand, queryUsage } from './commands/query.js';
import { reportsCommand, reportsUsage } from './commands/reports.js';
import { EXIT, UsageError, type CliIo } from './io.js';

type Command = {
  run: (args: string[], io: CliIo) => Promise<number>;
  usage: string;
  /** Where the command's blob storage connection comes from, for the line a storage failure ends with. */
  storage?: string;
};

const CONNECTION_OPTION = '--connection-string (else AzureWebJobsStorage)';

const COMMANDS: Record<string, Command> = {
  decode: { run: decodeCommand, usage: decodeUsage },
  check: { run: checkCommand, usage: checkUsage },
  'check-routes': { run: checkRoutesCommand, usage: checkRoutesUsage },
  quarantine: { run: quarantineCommand, usage: quarantineUsage, storage: CONNECTION_OPTION },
  dlq: { run: dlqCommand, usage: dlqUsage },
  infra: { run: infraCommand, usage: infraUsage },
  query: { run: queryCommand, usage: queryUsage, storage: CONNECTION_OPTION },
  reports: { run: reportsCommand, usage: reportsUsage, storage: 'AzureWebJobsStorage' },
  aggregate: { run: aggregateCommand, usage: aggregateUsage },
  archive: { run: archiveCommand, usage: archiveUsage, storage: 'AzureWebJobsStorage' },
};

function usage(): string {
  return `Usage: iot-routing <command> [options]\n\n${Object.values(COMMANDS)
    .map((c) => c.usage)
    .join('\n\n')}\n`;
}

/** The CLI entry point; returns the process exit code instead of exiting so tests can run it in-process. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.stderr.write(`iot-routing: unknown command "${name}"\n\n${usage()}`);
    return EXIT.usage;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`${command.usage}\n`);
    return EXIT.ok;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      io.stderr.write(`iot-routing ${name}: ${(error as Error).message}\n\n${command.usage}\n`);
      return EXIT.usage;
    }
    if (isRoutingError(error) && error.code === 'ConfigInvalid') {
      io.stderr.write(`iot-routing ${name}: ${error.message}\n`);
      return EXIT.usage;
    }
    // Storage (or a service) did not answer after the client's own retries: the user's to retry, not a crash, so one
    // line and no stack. Anything else not handled here is thrown on and shows its stack: a defect stays loud.
    if (isRoutingError(error) && error.kind === 'transient') {
      io.stderr.write(`iot-routing ${name}: ${firstLine(error)}; ${retryAdvice(error, command)}\n`);
      return EXIT.transient;
    }
    // Storage answered, and a blob it returned is not the document the command reads (damaged, or written by another
    // tool): the credentials were accepted, so the line names the blob, never the account key. Before the refusal
    // below, which the same code (StorageRejected) would otherwise take.
    if (isUndecodableDocument(error)) {
      io.stderr.write(
        `iot-routing ${name}: ${firstLine(error)}; the storage account answered with a blob that is not a document ` +
          'iot-routing reads (damaged, or written by another tool): restore it from a copy, or remove it if it does not belong there\n',
      );
      return EXIT.usage;
    }
    // Storage answered and refused (a wrong account key, an expired SAS, an identity without a data role): the user's
    // to fix, as a configuration error is, so one line naming the refusal and the connection to check, and exit 1.
    if (isRoutingError(error) && error.code === 'StorageRejected') {
      io.stderr.write(
        `iot-routing ${name}: ${firstLine(error)}; the storage account refused the request: check ${storageSetting(command)} ` +
          '(the account key, the SAS and its expiry, or the role of the identity on the account)\n',
      );
      return EXIT.usage;
    }
    if (FILE_ERRORS.has((error as NodeJS.ErrnoException).code ?? '')) {
      const file = (error as NodeJS.ErrnoException).path;
      const message = (error as Error).message;
      io.stderr.write(`iot-routing ${name}: ${file === undefined || message.includes(file) ? message : `${file}: ${message}`}\n`);
      return EXIT.usage;
    }
    throw error;
  }
}

/** What to do after a transient failure: for storage, the connection to check; then to run the command again. */
function retryAdvice(error: RoutingError, command: Command): string {
  const again = `run the command again${error.retryAfterSeconds === undefined ? '' : ` in ${error.retryAfterSeconds} s`}`;
  if (error.code !== 'StorageUnavailable') return again;
  return `check ${storageSetting(command)} and that the storage account is reachable, then ${again}`;
}

function storageSetting(command: Command): string {
  return command.storage ?? 'the storage connection setting';
}

/** An error's first line: the storage errors' messages name the operation and the answer, never a secret. */
function firstLine(error: Error): string {
  return error.message.split('\n', 1)[0] ?? '';
}

/** A file named on the command line that cannot be read: the user's to fix, not a crash. */
const FILE_ERRORS: ReadonlySet<string> = new Set(['ENOENT', 'EISDIR', 'ENOTDIR', 'EACCES', 'EPERM']);

/**
 * The process entry (bin/iot-routing.js). A reader that goes away early (`iot-routing decode f.avro | head`) makes
 * the next write fail with EPIPE: the command ends there, quietly, as Unix tools do, instead of with a stack trace.
 */
export async function runProcess(): Promise<void> {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok);
    });
  }
  process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
}

// Run as a script too (`node dist/src/cli/main.js ...`), not only through bin/iot-routing.js, which imports this
// module (its own path is argv[1] then, so this does not run twice).
const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) await runProcess();
