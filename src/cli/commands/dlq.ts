import { isServiceBusError, type RetryOptions, type ServiceBusClient } from '@azure/service-bus';
import {
  deadLetterQueuePath,
  listDeadLetters,
  purge,
  resubmit,
  showDeadLetter,
  type DeadLetterDetail,
  type DeadLetterSummary,
  type Selection,
} from '../../lib/servicebus/deadLetters.js';
import { connectionCredential, connectionSetting } from '../../lib/connectionCredential.js';
import { serviceBusClientFromSettings, type ServiceBusSettings } from '../../lib/servicebus/serviceBusClientFromSettings.js';
import { EXIT, parseCommandArgs, UsageError, writeLine, type CliIo } from '../io.js';

export const dlqUsage = `iot-routing dlq list|show|resubmit|purge --queue NAME (--connection-string CS | --namespace NS)
    [--sequence N]... [--all] [--max N] [--yes] [--wait-ms N] [--format table|json]
  Inspects and resubmits a Service Bus queue's dead-letter queue, where critical alerts land after exceeding the
  queue's maximum delivery count.
    list      dead letters with reason, description, device id, enqueued time, delivery and resubmit counts
              (peeks: changes nothing; --max N, default 100)
    show      one dead letter (--sequence N) with every property and a body preview
    resubmit  copies the selected (--sequence N, repeatable) or --all dead letters to the main queue with body and
              properties intact and iot-routing-resubmit-count + 1, then removes them from the dead-letter queue
    purge     deletes the selected (or all) dead letters; without --yes only says what it would delete
  resubmit and purge act on the messages present when they start. --wait-ms: how long to wait for selected messages
  that are not delivered (default 5000). The connection string may come from SERVICEBUS_CONNECTION, a namespace from
  SERVICEBUS_CONNECTION__fullyQualifiedNamespace; a namespace signs in as SERVICEBUS_CONNECTION__credential and
  __clientId say (a user-assigned managed identity), else with DefaultAzureCredential (az login).
  Exit 0 on success; 1 for usage errors, a refused purge, selected messages not found and Service Bus errors.`;

type Format = 'table' | 'json';

/**
 * The SDK's retry defaults are a long-running service's: three retries 30 s apart, and UnauthorizedAccess is retried
 * too (credentials may have been rotated). At a terminal that is a minute and a half before an operator learns the
 * identity is refused; the same three retries a second apart still ride out a brief server-busy or a dropped
 * connection. Only the wait changes: what is retried, and how often, stays the SDK's choice.
 */
const RETRY_OPTIONS: RetryOptions = { maxRetries: 3, retryDelayInMs: 1_000 };

const ACTIONS = ['list', 'show', 'resubmit', 'purge'] as const;
type Action = (typeof ACTIONS)[number];

export async function dlqCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: {
      queue: { type: 'string' },
      'connection-string': { type: 'string' },
      namespace: { type: 'string' },
      sequence: { type: 'string', multiple: true },
      all: { type: 'boolean', default: false },
      max: { type: 'string' },
      yes: { type: 'boolean', default: false },
      'wait-ms': { type: 'string' },
      format: { type: 'string', default: 'table' },
    },
  });
  const action = positionals[0];
  if (positionals.length !== 1 || !ACTIONS.includes(action as Action)) {
    throw new UsageError(`dlq takes one of ${ACTIONS.join(', ')}${action === undefined ? '' : `, not "${positionals.join(' ')}"`}`);
  }
  const queue = values.queue;
  if (queue === undefined || queue.trim() === '') throw new UsageError('--queue NAME is required');
  if (values.format !== 'table' && values.format !== 'json') throw new UsageError(`--format must be table or json, not "${values.format}"`);
  const format: Format = values.format;
  const sequenceNumbers = (values.sequence ?? []).map(parseSequenceNumber);
  const max = values.max === undefined ? undefined : positiveInteger('--max', values.max);
  const receiveWaitMs = values['wait-ms'] === undefined ? undefined : positiveInteger('--wait-ms', values['wait-ms']);
  const settings = connectionSettings(values['connection-string'], values.namespace, io.env);

  let selection: Selection | undefined;
  if (action === 'show' && sequenceNumbers.length !== 1) throw new UsageError('show takes exactly one --sequence N');
  if (action === 'resubmit' || action === 'purge') {
    if (values.all && sequenceNumbers.length > 0) throw new UsageError('give --sequence N or --all, not both');
    if (action === 'resubmit' && !values.all && sequenceNumbers.length === 0) {
      throw new UsageError('resubmit needs --sequence N (repeatable) or --all');
    }
    selection = sequenceNumbers.length > 0 ? { sequenceNumbers } : { all: true };
  }

  const client = serviceBusClientFromSettings(settings, { retryOptions: RETRY_OPTIONS });
  try {
    switch (action as Action) {
      case 'list':
        return await list(client, queue, max, format, io);
      case 'show':
        return await show(client, queue, sequenceNumbers[0] ?? 0n, format, io);
      case 'resubmit':
        return await resubmitCommand(client, queue, selection ?? { all: true }, { max, receiveWaitMs }, format, io);
      case 'purge':
        return await purgeCommand(client, queue, selection ?? { all: true }, { max, receiveWaitMs, yes: values.yes }, format, io);
    }
  } catch (error) {
    const failure = serviceBusFailure(error);
    if (failure !== undefined) {
      const attempts = failure.attempts > 1 ? ` (${failure.attempts} attempts)` : '';
      io.stderr.write(`iot-routing dlq: Service Bus ${failure.error.code ?? 'error'}: ${failure.error.message}${attempts}\n`);
      return EXIT.usage;
    }
    throw error;
  } finally {
    await client.close();
  }
}

/**
 * The Service Bus error `error` is, if any: a ServiceBusError, or core-amqp's MessagingError (connection failures
 * surface as that). When the SDK retried, core-amqp throws an AggregateError of every attempt's error: the last
 * attempt's is the one to report.
 */
function serviceBusFailure(error: unknown): { error: Error & { code?: string }; attempts: number } | undefined {
  if (!(error instanceof Error)) return undefined;
  const errors = (error as { errors?: unknown }).errors;
  if (error.name === 'AggregateError' && Array.isArray(errors)) {
    const last = serviceBusFailure(errors.at(-1));
    return last === undefined ? undefined : { error: last.error, attempts: errors.length };
  }
  return isServiceBusError(error) || error.name === 'MessagingError' ? { error, attempts: 1 } : undefined;
}

async function list(client: ServiceBusClient, queue: string, max: number | undefined, format: Format, io: CliIo): Promise<number> {
  const deadLetters = await listDeadLetters(client, queue, { max: max ?? 100 });
  if (format === 'json') {
    await writeLine(io.stdout, toJson(deadLetters));
    return EXIT.ok;
  }
  if (deadLetters.length === 0) {
    await writeLine(io.stdout, `${deadLetterQueuePath(queue)} is empty`);
    return EXIT.ok;
  }
  for (const line of table(
    ['SEQ', 'ENQUEUED', 'DEVICE', 'REASON', 'DELIVERIES', 'RESUBMITS', 'MESSAGE ID', 'DESCRIPTION'],
    deadLetters.map((d) => [
      d.sequenceNumber.toString(),
      d.enqueuedTime?.toISOString() ?? '-',
      d.deviceId ?? '-',
      d.deadLetterReason ?? '-',
      d.deliveryCount?.toString() ?? '-',
      d.resubmitCount.toString(),
      d.messageId ?? '-',
      clip(d.deadLetterErrorDescription ?? '-', 80),
    ]),
  )) {
    await writeLine(io.stdout, line);
  }
  await writeLine(io.stdout, `${deadLetters.length} dead letter${deadLetters.length === 1 ? '' : 's'} in ${deadLetterQueuePath(queue)}`);
  return EXIT.ok;
}

async function show(client: ServiceBusClient, queue: string, sequenceNumber: bigint, format: Format, io: CliIo): Promise<number> {
  const found = await showDeadLetter(client, queue, sequenceNumber);
  if (found === undefined) {
    io.stderr.write(`iot-routing dlq: no message with sequence number ${sequenceNumber} in ${deadLetterQueuePath(queue)}\n`);
    return EXIT.usage;
  }
  if (format === 'json') {
    await writeLine(io.stdout, toJson(found));
    return EXIT.ok;
  }
  for (const line of describe(found)) await writeLine(io.stdout, line);
  return EXIT.ok;
}

async function resubmitCommand(
  client: ServiceBusClient,
  queue: string,
  selection: Selection,
  options: { max: number | undefined; receiveWaitMs: number | undefined },
  format: Format,
  io: CliIo,
): Promise<number> {
  const result = await resubmit(client, queue, selection, options);
  if (format === 'json') {
    await writeLine(io.stdout, toJson(result));
  } else {
    await writeLine(
      io.stdout,
      `resubmitted ${result.resubmitted.length} dead letter${result.resubmitted.length === 1 ? '' : 's'} from ${deadLetterQueuePath(queue)} to ${queue}`,
    );
    if (result.resubmitted.length > 0) {
      for (const line of table(
        ['SEQ', 'MESSAGE ID', 'RESUBMIT COUNT'],
        result.resubmitted.map((r) => [r.sequenceNumber.toString(), r.messageId ?? '-', r.resubmitCount.toString()]),
      )) {
        await writeLine(io.stdout, line);
      }
    }
  }
  return reportMissing(result.missing, queue, io);
}

async function purgeCommand(
  client: ServiceBusClient,
  queue: string,
  selection: Selection,
  options: { max: number | undefined; receiveWaitMs: number | undefined; yes: boolean },
  format: Format,
  io: CliIo,
): Promise<number> {
  if (!options.yes) {
    // Say exactly what would go, from a peek, so the operator can decide (and resubmit instead).
    const present = await listDeadLetters(client, queue, { max: Number.POSITIVE_INFINITY });
    const wanted = 'sequenceNumbers' in selection ? new Set(selection.sequenceNumbers) : undefined;
    const doomed = present.filter((d) => wanted === undefined || wanted.has(d.sequenceNumber)).slice(0, options.max);
    const numbers = doomed.map((d) => d.sequenceNumber.toString());
    io.stderr.write(
      `iot-routing dlq: purge would permanently delete ${doomed.length} dead-lettered message${doomed.length === 1 ? '' : 's'} ` +
        `from ${deadLetterQueuePath(queue)}${numbers.length > 0 ? ` (sequence numbers ${clip(numbers.join(', '), 200)})` : ''}. ` +
        'Nothing was deleted; run again with --yes to delete them.\n',
    );
    return EXIT.usage;
  }
  const result = await purge(client, queue, {
    confirm: true,
    max: options.max,
    receiveWaitMs: options.receiveWaitMs,
    ...('sequenceNumbers' in selection ? { sequenceNumbers: selection.sequenceNumbers } : {}),
  });
  if (format === 'json') {
    await writeLine(io.stdout, toJson(result));
  } else {
    await writeLine(io.stdout, `purged ${result.purged.length} dead letter${result.purged.length === 1 ? '' : 's'} from ${deadLetterQueuePath(queue)}`);
  }
  return reportMissing(result.missing, queue, io);
}

function reportMissing(missing: readonly bigint[], queue: string, io: CliIo): number {
  if (missing.length === 0) return EXIT.ok;
  io.stderr.write(
    `iot-routing dlq: not in ${deadLetterQueuePath(queue)} (removed, or locked by another receiver): sequence number${missing.length === 1 ? '' : 's'} ${missing.join(', ')}\n`,
  );
  return EXIT.usage;
}

function describe(d: DeadLetterDetail): string[] {
  const field = (name: string, value: string | undefined): string => `${`${name}:`.padEnd(26)}${value ?? '-'}`;
  const lines = [
    field('sequence number', d.sequenceNumber.toString()),
    field('message id', d.messageId),
    field('device id', d.deviceId),
    field('enqueued', d.enqueuedTime?.toISOString()),
    field('dead-letter reason', d.deadLetterReason),
    field('dead-letter description', d.deadLetterErrorDescription),
    field('dead-letter source', d.deadLetterSource),
    field('delivery count', d.deliveryCount?.toString()),
    field('resubmit count', d.resubmitCount.toString()),
    field('content type', d.contentType),
    field('correlation id', d.correlationId),
    field('subject', d.subject),
    'application properties:',
  ];
  for (const [key, value] of Object.entries(d.applicationProperties).sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`  ${key} = ${propertyText(value)}`);
  }
  const { body } = d;
  const size = body.sizeInBytes === undefined ? '' : `, ${body.sizeInBytes} bytes`;
  lines.push(`body (${body.bodyType}${size}, ${body.encoding}${body.truncated ? ', truncated' : ''}):`, body.preview);
  return lines;
}

function propertyText(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `0x${value.toString('hex')}`;
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? String(value);
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function clip(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

/** bigint sequence numbers as strings (JSON has no 64-bit integers), buffers as base64. */
function toJson(value: DeadLetterSummary[] | DeadLetterDetail | object): string {
  return JSON.stringify(value, function replacer(this: Record<string, unknown>, key: string, item: unknown) {
    const original = this[key];
    if (Buffer.isBuffer(original)) return original.toString('base64');
    return typeof item === 'bigint' ? item.toString() : item;
  }, 2);
}

function parseSequenceNumber(text: string): bigint {
  if (!/^\d{1,19}$/.test(text.trim())) throw new UsageError(`--sequence must be a sequence number, not "${text}"`);
  return BigInt(text.trim());
}

function positiveInteger(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new UsageError(`${flag} must be a positive integer, not "${text}"`);
  return value;
}

function connectionSettings(
  connectionString: string | undefined,
  namespace: string | undefined,
  env: CliIo['env'],
): ServiceBusSettings {
  if (connectionString !== undefined && namespace !== undefined) throw new UsageError('give --connection-string or --namespace, not both');
  if (connectionString !== undefined) return { connectionString };
  // A namespace signs in as the Functions host would for SERVICEBUS_CONNECTION (a user-assigned identity when its
  // __credential and __clientId say so).
  const identity = (fullyQualifiedNamespace: string): ServiceBusSettings => ({
    fullyQualifiedNamespace,
    credential: connectionCredential(env, 'SERVICEBUS_CONNECTION'),
  });
  if (namespace !== undefined) return identity(namespace);
  const fromEnv = connectionSetting(env, 'SERVICEBUS_CONNECTION');
  if (fromEnv !== undefined) return { connectionString: fromEnv };
  // The Functions convention for an identity-based connection named SERVICEBUS_CONNECTION, read as the host reads it.
  const identityNamespace = connectionSetting(env, 'SERVICEBUS_CONNECTION', 'fullyQualifiedNamespace');
  if (identityNamespace !== undefined) return identity(identityNamespace);
  throw new UsageError('give --connection-string CS or --namespace NS, or set SERVICEBUS_CONNECTION');
}
