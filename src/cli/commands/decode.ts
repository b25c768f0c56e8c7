import { createReadStream } from 'node:fs';
import { readArchive } from '../../lib/message/readArchive.js';
import { toMessageRecord } from '../../lib/message/serialize.js';
import { damageLine, EXIT, parseCommandArgs, UsageError, writeLine, type CliIo } from '../io.js';

export const decodeUsage = `iot-routing decode <file> [--format ndjson|json]
  Decodes an archive file (IoT Hub Avro, Event Hubs Capture Avro, IoT Hub JSON lines, empty) and prints one
  normalized message per line. Exit 0 when the whole file decoded, 2 when it is truncated or corrupt (what decoded
  is printed first, the reason goes to stderr), 1 for usage errors.`;

export async function decodeCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: { format: { type: 'string', default: 'ndjson' } },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError('decode takes exactly one file');
  if (values.format !== 'ndjson' && values.format !== 'json') throw new UsageError(`--format must be ndjson or json, not "${values.format}"`);

  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  let first = true;
  if (values.format === 'json') await writeLine(io.stdout, '[');
  for await (const event of readArchive(input, { name: file })) {
    if (event.type === 'records') {
      for (const message of event.messages) {
        const line = JSON.stringify(toMessageRecord(message));
        if (values.format === 'json') {
          await writeLine(io.stdout, `${first ? '' : ','}${line}`);
        } else {
          await writeLine(io.stdout, line);
        }
        first = false;
      }
      continue;
    }
    if (values.format === 'json') await writeLine(io.stdout, ']');
    const { summary } = event;
    if (summary.damage !== null) {
      io.stderr.write(damageLine(file, summary.damage, summary.records));
      return EXIT.damaged;
    }
  }
  return EXIT.ok;
}
