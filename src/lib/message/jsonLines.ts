import type { ArchiveDamage, ArchiveEvent, ArchiveSourceInfo } from './archive.js';
import { DEPTH_ERROR, MAX_JSON_DEPTH, nestedDeeperThan } from './body.js';
import { systemField, toPropertyMap, toRoutedMessage } from './normalize.js';
import type { DecodedBody, JsonValue, RoutedMessage } from './RoutedMessage.js';

/** Messages per `records` event; a batch is also flushed at the end of every input chunk. */
const BATCH_SIZE = 500;

/**
 * A line longer than this cannot be an IoT Hub record (messages are at most 256 KB, about 342 KB as base64 plus
 * properties); it is skipped instead of buffered, which keeps memory bounded whatever the file holds.
 */
const MAX_LINE_BYTES = 4 * 1024 * 1024;

const tooLong = `longer than ${MAX_LINE_BYTES} bytes, which no IoT Hub record is`;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Reads IoT Hub's JSON storage encoding: one JSON object per line with `EnqueuedTimeUtc`, `Properties`
 * (application properties and enrichments), `SystemProperties` (`connectionDeviceId`, `enqueuedTime`,
 * `contentType`, `contentEncoding`, ...) and `Body`. When the message declared `contentType: application/json` and
 * `contentEncoding: UTF-8` (any case), IoT Hub writes `Body` as the JSON value itself; otherwise as a base64 string.
 *
 * Streaming: lines are split on `\n` across chunk boundaries (`\r\n`, blank lines and a last line without a newline
 * are accepted) and records are yielded in batches, so memory holds one batch and one line.
 *
 * Bad lines do not cost the rest of the file. A line that is not JSON, not an object, or lacks `SystemProperties` /
 * `Body` is skipped and counted; every good record is still yielded. The end summary's `damage` is then
 * `ArchiveCorrupt` at the first bad line's byte offset, and its detail gives the count and the first line's number
 * and reason. A last line without a newline that starts a record but does not parse was cut short: that is
 * `ArchiveTruncated` at the line's offset. When a file has both, `damage` is the earlier one (where the damage
 * starts) and its detail mentions the other.
 *
 * `source.index` is the zero-based line number, so `index + 1` is the line an editor shows.
 */
export async function* readJsonLines(
  input: AsyncIterable<Uint8Array>,
  info: ArchiveSourceInfo,
): AsyncGenerator<ArchiveEvent> {
  let bytes = 0;
  let records = 0;
  let lineIndex = 0;
  let lineStart = 0;
  let carry: Buffer[] = [];
  let carryLength = 0;
  let oversized = false;
  let batch: RoutedMessage[] = [];
  let badLines = 0;
  let firstBad: { line: number; byteOffset: number; reason: string } | undefined;
  let truncated: ArchiveDamage | undefined;

  const reportBad = (line: number, byteOffset: number, reason: string): void => {
    badLines++;
    firstBad ??= { line, byteOffset, reason };
  };

  const take = (line: Buffer, terminated: boolean): void => {
    const outcome = readLine(line, lineStart, lineIndex, terminated, info);
    if (outcome === undefined) return;
    if ('message' in outcome) {
      batch.push(outcome.message);
      records++;
    } else if (outcome.truncated) {
      truncated = { code: 'ArchiveTruncated', byteOffset: lineStart, detail: outcome.reason };
    } else {
      reportBad(lineIndex, lineStart, outcome.reason);
    }
  };

  for await (const chunk of input) {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const base = bytes;
    bytes += buf.length;
    let pos = 0;
    for (let nl = buf.indexOf(0x0a, pos); nl !== -1; nl = buf.indexOf(0x0a, pos)) {
      if (!oversized) {
        const tail = buf.subarray(pos, nl);
        const length = carryLength + tail.length;
        if (length > MAX_LINE_BYTES) reportBad(lineIndex, lineStart, tooLong);
        else take(carryLength === 0 ? tail : Buffer.concat([...carry, tail], length), true);
      }
      carry = [];
      carryLength = 0;
      oversized = false;
      lineIndex++;
      lineStart = base + nl + 1;
      pos = nl + 1;
      if (batch.length >= BATCH_SIZE) {
        yield { type: 'records', messages: batch };
        batch = [];
      }
    }
    if (pos < buf.length && !oversized) {
      // Copied: the producer may reuse the chunk's memory once we ask for the next one.
      carry.push(Buffer.from(buf.subarray(pos)));
      carryLength += buf.length - pos;
      if (carryLength > MAX_LINE_BYTES) {
        reportBad(lineIndex, lineStart, tooLong);
        carry = [];
        carryLength = 0;
        oversized = true;
      }
    }
    if (batch.length > 0) {
      yield { type: 'records', messages: batch };
      batch = [];
    }
  }
  if (carryLength > 0) take(Buffer.concat(carry, carryLength), false);
  if (batch.length > 0) yield { type: 'records', messages: batch };

  yield {
    type: 'end',
    summary: {
      format: bytes === 0 ? 'empty' : 'json-lines',
      records,
      bytes,
      damage: summarizeDamage(badLines, firstBad, truncated),
    },
  };
}

type LineOutcome = { message: RoutedMessage } | { reason: string; truncated: boolean } | undefined;

function readLine(
  raw: Buffer,
  byteOffset: number,
  index: number,
  terminated: boolean,
  info: ArchiveSourceInfo,
): LineOutcome {
  let line = raw;
  if (byteOffset === 0 && line.length >= 3 && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) {
    line = line.subarray(3);
  }
  const text = line.toString('utf8').trim();
  if (text === '') return undefined;
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!terminated && text.startsWith('{')) {
      return {
        truncated: true,
        reason: `the last line (line ${index + 1}, ${raw.length} bytes, no newline) ends inside a record: ${message}`,
      };
    }
    return { truncated: false, reason: `not JSON: ${message}` };
  }
  const shapeError = checkShape(record);
  if (shapeError !== undefined) return { truncated: false, reason: shapeError };
  // IoT Hub writes a declared JSON body as the value itself, which is re-serialised below.
  if (nestedDeeperThan((record as IotHubJsonRecord).Body, MAX_JSON_DEPTH)) return { truncated: false, reason: `Body: ${DEPTH_ERROR}` };
  return { message: toMessage(record as IotHubJsonRecord, index, info) };
}

interface IotHubJsonRecord {
  EnqueuedTimeUtc?: unknown;
  Properties?: unknown;
  SystemProperties: Record<string, unknown>;
  Body: unknown;
}

function checkShape(record: unknown): string | undefined {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return 'not a JSON object';
  const r = record as Record<string, unknown>;
  if (typeof r['SystemProperties'] !== 'object' || r['SystemProperties'] === null || Array.isArray(r['SystemProperties'])) {
    return 'SystemProperties is missing or not an object';
  }
  if (!Object.hasOwn(r, 'Body')) return 'Body is missing';
  const properties = r['Properties'];
  if (properties !== undefined && properties !== null && (typeof properties !== 'object' || Array.isArray(properties))) {
    return 'Properties is not an object';
  }
  return undefined;
}

function toMessage(record: IotHubJsonRecord, index: number, info: ArchiveSourceInfo): RoutedMessage {
  const systemProperties = toPropertyMap(record.SystemProperties);
  const properties = toPropertyMap(record.Properties);
  const declaredJson = isUtf8JsonDeclaration(
    systemField(systemProperties, 'contentType'),
    systemField(systemProperties, 'contentEncoding'),
  );
  const source = { kind: 'blob', blobName: info.name, index, format: 'json-lines', sequenceNumber: null, offset: null } as const;
  const enqueuedTimeFallbacks = [record.EnqueuedTimeUtc];
  const body = record.Body;

  if (typeof body === 'string' && !declaredJson) {
    // IoT Hub's base64 layer. A string that is not base64 was not written by IoT Hub this way; keep its text.
    const storedAsBase64 = body.length % 4 === 0 && BASE64.test(body);
    return toRoutedMessage({
      systemProperties,
      properties,
      body: storedAsBase64 ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8'),
      storedAsBase64,
      enqueuedTimeFallbacks,
      source,
    });
  }
  // A JSON value (any type when declared; a non-string one can only be JSON whatever the declaration says). Its
  // bytes are the compact serialisation, which is what IoT Hub received unless the device sent extra whitespace.
  const value = body as JsonValue;
  const decoded: DecodedBody = {
    kind: 'json',
    value,
    decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: declaredJson },
  };
  return toRoutedMessage({
    systemProperties,
    properties,
    body: Buffer.from(JSON.stringify(value), 'utf8'),
    decoded,
    enqueuedTimeFallbacks,
    source,
  });
}

/** IoT Hub's own test for writing `Body` as JSON: both values, compared without case. */
function isUtf8JsonDeclaration(contentType: string | undefined, contentEncoding: string | undefined): boolean {
  if (contentType === undefined || contentEncoding === undefined) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  const encoding = contentEncoding.trim().toLowerCase();
  return type === 'application/json' && (encoding === 'utf-8' || encoding === 'utf8');
}

function summarizeDamage(
  badLines: number,
  firstBad: { line: number; byteOffset: number; reason: string } | undefined,
  truncated: ArchiveDamage | undefined,
): ArchiveDamage | null {
  const corrupt: ArchiveDamage | undefined =
    firstBad === undefined
      ? undefined
      : {
          code: 'ArchiveCorrupt',
          byteOffset: firstBad.byteOffset,
          detail:
            (badLines === 1
              ? '1 line is not an IoT Hub JSON record and was skipped; '
              : `${badLines} lines are not IoT Hub JSON records and were skipped; `) +
            `the first is line ${firstBad.line + 1} at byte ${firstBad.byteOffset}: ${firstBad.reason}`,
        };
  if (corrupt === undefined) return truncated ?? null;
  if (truncated === undefined) return corrupt;
  const [first, second] = corrupt.byteOffset <= truncated.byteOffset ? [corrupt, truncated] : [truncated, corrupt];
  return { ...first, detail: `${first.detail}; also ${second.code} at byte ${second.byteOffset}: ${second.detail}` };
}
