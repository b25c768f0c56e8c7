import avro from 'avsc';
import { isUtf8 } from 'node:buffer';
import { parseEnqueuedTime, storedRecordMessage } from '../normalize.js';
import type { ArchiveFormat, PropertyValue, RoutedMessage } from '../RoutedMessage.js';
import { ObjectShapes, setOwnProperty } from '../objectShapes.js';
import { AvroDataError, NO_SLOT, StringCache, type AvroCursor } from './AvroCursor.js';
import type { CaptureLayout, IotHubLayout, PrimitiveKind, RecognisedSchema, ValueLayout } from './writerSchema.js';

/**
 * Decodes the record at the cursor and moves the cursor past it; throws AvroDataError when its bytes do not match
 * the writer schema (or run past the cursor's end). `index` is the record's position in the file. `shareBlock` says
 * the cursor's buffer is the reader's own memory and small enough for message bodies to be views into it;
 * otherwise each body is copied out.
 */
export type RecordDecoder = (cursor: AvroCursor, index: number, shareBlock: boolean) => RoutedMessage;

type Recognised = Exclude<RecognisedSchema, { kind: 'unknown' }>;
/** `slot` is the value's position in its map, for the string cache. */
type ValueReader = (cursor: AvroCursor, strings: StringCache, slot: number) => PropertyValue;
type MapReader = (cursor: AvroCursor) => Record<string, PropertyValue>;
type BodyReader = (cursor: AvroCursor, shareBlock: boolean) => Uint8Array;

const EMPTY_BODY = new Uint8Array(0);

export const FORMAT_OF = { iothub: 'avro-iothub', capture: 'avro-capture' } as const satisfies Record<
  Recognised['kind'],
  ArchiveFormat
>;

/** Throws when avsc rejects a schema that is not one of our two exact layouts. */
export function createRecordDecoder(recognised: Recognised, blobName: string): RecordDecoder {
  const { fast } = recognised;
  if (fast === null) return avscDecoder(recognised, blobName);
  return fast.kind === 'iothub' ? iotHubDecoder(fast, blobName) : captureDecoder(fast, blobName);
}

function iotHubDecoder(layout: IotHubLayout, blobName: string): RecordDecoder {
  const readProperties = mapReader(layout.properties);
  // EnqueuedTimeUtc goes through the system property strings: the same text comes again there as enqueuedTime.
  const systemStrings = new StringCache();
  const readSystemProperties = mapReader(layout.systemProperties, systemStrings);
  const readBody = bodyReader(layout.body);
  return (cursor, index, shareBlock) => {
    const enqueuedTimeUtc = cursor.readCachedString(systemStrings, NO_SLOT);
    const properties = readProperties(cursor);
    const systemProperties = readSystemProperties(cursor);
    const body = readBody(cursor, shareBlock);
    return storedRecordMessage(systemProperties, properties, body, enqueuedTimeUtc, {
      kind: 'blob',
      blobName,
      index,
      format: 'avro-iothub',
      sequenceNumber: null,
      offset: null,
    });
  };
}

function captureDecoder(layout: CaptureLayout, blobName: string): RecordDecoder {
  const readSystemProperties = mapReader(layout.systemProperties);
  const readProperties = mapReader(layout.properties);
  const readBody = bodyReader(layout.body);
  return (cursor, index, shareBlock) => {
    const sequenceNumber = cursor.readLong();
    const offset = cursor.readString();
    const enqueuedTimeUtc = cursor.readString();
    const systemProperties = readSystemProperties(cursor);
    const properties = readProperties(cursor);
    const body = readBody(cursor, shareBlock);
    return captureMessage(sequenceNumber, offset, enqueuedTimeUtc, systemProperties, properties, body, { blobName, index });
  };
}

/**
 * Capture keeps the Event Hubs sequence number and offset outside the property maps; they are copied in under
 * their AMQP names so that every Event Hubs path shows them the same way, without overwriting what the record had.
 */
function captureMessage(
  sequenceNumber: number | null,
  offset: string | null,
  enqueuedTimeUtc: unknown,
  systemProperties: Record<string, PropertyValue>,
  properties: Record<string, PropertyValue>,
  body: Uint8Array,
  where: { blobName: string; index: number },
): RoutedMessage {
  if (sequenceNumber !== null && !Object.hasOwn(systemProperties, 'x-opt-sequence-number')) {
    systemProperties['x-opt-sequence-number'] = sequenceNumber;
  }
  if (offset !== null && !Object.hasOwn(systemProperties, 'x-opt-offset')) {
    systemProperties['x-opt-offset'] = offset;
  }
  // Capture writes EnqueuedTimeUtc to the second ("10/28/2021 3:15:38 AM"), and the same instant to the millisecond
  // as `x-opt-enqueued-time` when the sender's events carry it: that one, when valid, so that a sender's events a
  // few ms apart keep their own times (and, without a message id, their own identities).
  const precise = systemProperties['x-opt-enqueued-time'];
  const fallback = precise !== undefined && parseEnqueuedTime(precise) !== null ? precise : enqueuedTimeUtc;
  return storedRecordMessage(systemProperties, properties, body, fallback, {
    kind: 'blob',
    blobName: where.blobName,
    index: where.index,
    format: 'avro-capture',
    sequenceNumber,
    offset,
  });
}

/** Each map reader keeps its own string caches and shapes: they live as long as the file's decoder. */
function mapReader(values: ValueLayout, strings = new StringCache()): MapReader {
  const keys = new StringCache();
  const shapes = new ObjectShapes();
  if (values === 'string') return (cursor) => cursor.readStringMap(keys, strings, shapes);
  const readValue = valueReader(values);
  return (cursor) => {
    const names = shapes.keys;
    const items = shapes.values;
    let n = 0;
    for (let count = cursor.readBlockCount(); count !== 0; count = cursor.readBlockCount()) {
      for (let i = 0; i < count; i++, n++) {
        names[n] = cursor.readCachedString(keys, n);
        items[n] = readValue(cursor, strings, n);
      }
    }
    return shapes.build(n) as Record<string, PropertyValue>;
  };
}

function valueReader(layout: ValueLayout): ValueReader {
  if (typeof layout === 'string') return primitiveReader(layout);
  const branches = layout.map(primitiveReader);
  return (cursor, strings, slot) => {
    const branch = cursor.readLong();
    const read = branches[branch];
    if (read === undefined) throw new AvroDataError(`union branch ${branch} of ${branches.length}`);
    return read(cursor, strings, slot);
  };
}

function primitiveReader(kind: PrimitiveKind): ValueReader {
  switch (kind) {
    case 'null':
      return () => null;
    case 'boolean':
      return (cursor) => cursor.readBoolean();
    case 'int':
    case 'long':
      return (cursor) => cursor.readLong();
    case 'float':
      return (cursor) => cursor.readFloat();
    case 'double':
      return (cursor) => cursor.readDouble();
    case 'string':
      return (cursor, strings, slot) => cursor.readCachedString(strings, slot);
    case 'bytes':
      return (cursor) => bytesProperty(cursor.readBytesView());
  }
}

function bodyReader(layout: ValueLayout): BodyReader {
  if (layout === 'bytes') return (cursor, shareBlock) => (shareBlock ? cursor.readBytesView() : cursor.readBytesCopy());
  const branches = [...layout];
  return (cursor, shareBlock) => {
    const branch = cursor.readLong();
    const kind = branches[branch];
    if (kind === 'bytes') return shareBlock ? cursor.readBytesView() : cursor.readBytesCopy();
    if (kind === 'null') return EMPTY_BODY;
    throw new AvroDataError(`Body union branch ${branch} of ${branches.length}`);
  };
}

/** Property values have no bytes form in the model: text stays text, anything else is kept losslessly as base64. */
function bytesProperty(bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes.toString('base64');
}

/**
 * For writer schemas that are ours in substance but not in layout. avsc decodes with unions always wrapped
 * (`{"long": 5}`): an unwrapped `["long","double"]` union is ambiguous to avsc, and wrapping is undone below with
 * the schema in hand rather than by guessing from the value's shape.
 */
function avscDecoder(recognised: Recognised, blobName: string): RecordDecoder {
  const { kind, schema } = recognised;
  const type = avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'always' });
  const fieldTypes = new Map<string, unknown>();
  for (const field of schema['fields'] as { name: string; type: unknown }[]) fieldTypes.set(field.name, field.type);
  const fieldValue = (record: Record<string, unknown>, name: string): unknown =>
    unwrap(record[name], fieldTypes.get(name));
  return (cursor, index, shareBlock) => {
    let decoded: { value: unknown; offset: number };
    try {
      // avsc reads to the end of the buffer it is given: a cursor's end is its buffer's.
      decoded = type.decode(cursor.buf, cursor.pos);
    } catch (error) {
      throw new AvroDataError((error as Error).message);
    }
    // avsc does not say how many bytes it lacked: one more than there are makes a window reader grow its window.
    if (decoded.offset < 0) throw new AvroDataError('the record runs past the end of the block', cursor.end + 1);
    cursor.pos = decoded.offset;
    const record = decoded.value as Record<string, unknown>;
    const systemProperties = propertyMap(fieldValue(record, 'SystemProperties'));
    const properties = propertyMap(fieldValue(record, 'Properties'));
    const rawBody = fieldValue(record, 'Body');
    // avsc's bytes are views into the block too.
    const body = Buffer.isBuffer(rawBody) ? (shareBlock ? rawBody : Buffer.from(rawBody)) : EMPTY_BODY;
    const enqueuedTimeUtc = fieldValue(record, 'EnqueuedTimeUtc');
    const where = { blobName, index };
    if (kind === 'capture') {
      const sequence = fieldValue(record, 'SequenceNumber');
      const offset = fieldValue(record, 'Offset');
      return captureMessage(
        typeof sequence === 'number' ? sequence : null,
        typeof offset === 'string' || typeof offset === 'number' ? String(offset) : null,
        enqueuedTimeUtc,
        systemProperties,
        properties,
        body,
        where,
      );
    }
    return storedRecordMessage(systemProperties, properties, body, enqueuedTimeUtc, {
      kind: 'blob',
      ...where,
      format: 'avro-iothub',
      sequenceNumber: null,
      offset: null,
    });
  };
}

/** Removes avsc's union wrapping, recursing into maps, guided by the writer schema. */
function unwrap(value: unknown, schema: unknown): unknown {
  if (Array.isArray(schema)) {
    if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
    const branch = Object.keys(value)[0];
    if (branch === undefined) return value;
    const branchSchema = schema.find((s) => branchName(s) === branch || branchName(s).endsWith(`.${branch}`));
    return unwrap((value as Record<string, unknown>)[branch], branchSchema);
  }
  if (isMapSchema(schema) && typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) setOwnProperty(out, key, unwrap(item, schema.values));
    return out;
  }
  return value;
}

function propertyMap(value: unknown): Record<string, PropertyValue> {
  const out: Record<string, PropertyValue> = {};
  if (typeof value !== 'object' || value === null) return out;
  for (const [key, item] of Object.entries(value)) setOwnProperty(out, key, propertyValue(item));
  return out;
}

function propertyValue(value: unknown): PropertyValue {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return value;
  }
  if (Buffer.isBuffer(value)) return bytesProperty(value);
  if (typeof value === 'bigint') return Number(value);
  return JSON.stringify(value) ?? null;
}

function branchName(schema: unknown): string {
  if (typeof schema === 'string') return schema;
  if (typeof schema !== 'object' || schema === null) return '';
  const { type, name, namespace } = schema as { type?: unknown; name?: unknown; namespace?: unknown };
  if (typeof name === 'string') return typeof namespace === 'string' && !name.includes('.') ? `${namespace}.${name}` : name;
  return typeof type === 'string' ? type : '';
}

function isMapSchema(schema: unknown): schema is { type: 'map'; values: unknown } {
  return typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'map';
}
