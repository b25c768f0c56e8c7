/**
 * Recognises the writer schema in an Avro header as one of the two archive shapes and decides how its records are
 * read: by the hand-written decoder when the field layout is exactly the one it reads, otherwise by avsc.
 */

export type PrimitiveKind = 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'string' | 'bytes';

/** A value's encoding: one primitive, or a union given as its branch kinds in writer order. */
export type ValueLayout = PrimitiveKind | readonly PrimitiveKind[];

export interface IotHubLayout {
  kind: 'iothub';
  properties: ValueLayout;
  systemProperties: ValueLayout;
  body: ValueLayout;
}

export interface CaptureLayout {
  kind: 'capture';
  systemProperties: ValueLayout;
  properties: ValueLayout;
  body: ValueLayout;
}

export type RecognisedSchema =
  | {
      kind: 'iothub' | 'capture';
      /** Null when the schema is recognisably one of the two but laid out differently: avsc decodes it. */
      fast: IotHubLayout | CaptureLayout | null;
      schema: Record<string, unknown>;
    }
  | { kind: 'unknown'; detail: string };

const IOTHUB_NAME = 'Microsoft.Azure.Devices.Message';
const CAPTURE_NAME = 'Microsoft.ServiceBus.Messaging.EventData';
const IOTHUB_FIELDS = ['EnqueuedTimeUtc', 'Properties', 'SystemProperties', 'Body'];
const CAPTURE_FIELDS = ['SequenceNumber', 'Offset', 'EnqueuedTimeUtc', 'SystemProperties', 'Properties', 'Body'];
const PRIMITIVES = new Set<string>(['null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'bytes']);

interface FieldSchema {
  name: string;
  type: unknown;
}

export function recogniseWriterSchema(schema: unknown): RecognisedSchema {
  if (!isObject(schema) || schema['type'] !== 'record' || !Array.isArray(schema['fields'])) {
    return { kind: 'unknown', detail: `writer schema is not a record: ${preview(schema)}` };
  }
  const fields = (schema['fields'] as unknown[]).filter(
    (f): f is FieldSchema => isObject(f) && typeof f['name'] === 'string',
  );
  const names = fields.map((f) => f.name);
  const fullName = recordFullName(schema);
  const hasAll = (wanted: readonly string[]): boolean => wanted.every((n) => names.includes(n));
  // The name decides when it is one of ours; otherwise a record carrying every field of a shape is taken as it.
  const kind =
    fullName === CAPTURE_NAME || (fullName !== IOTHUB_NAME && hasAll(CAPTURE_FIELDS))
      ? 'capture'
      : fullName === IOTHUB_NAME || hasAll(IOTHUB_FIELDS)
        ? 'iothub'
        : null;
  if (kind === null) {
    return { kind: 'unknown', detail: `writer schema ${fullName} is neither ${IOTHUB_NAME} nor ${CAPTURE_NAME}` };
  }
  const field = (name: string): unknown => fields.find((f) => f.name === name)?.type;
  const required = kind === 'capture' ? CAPTURE_FIELDS : IOTHUB_FIELDS.slice(1);
  const missing = required.filter((n) => !names.includes(n));
  const badMaps = ['Properties', 'SystemProperties'].filter((n) => names.includes(n) && !isMapLike(field(n)));
  const body = field('Body');
  if (missing.length > 0 || badMaps.length > 0 || !(body === undefined || isBytesLike(body))) {
    const problems = [
      ...missing.map((n) => `no ${n}`),
      ...badMaps.map((n) => `${n} is not a map`),
      ...(body !== undefined && !isBytesLike(body) ? ['Body is not bytes'] : []),
    ];
    return { kind: 'unknown', detail: `writer schema ${fullName} looks like ${kind} but ${problems.join(', ')}` };
  }
  return { kind, fast: fastLayout(kind, fields), schema };
}

/** The layout the hand-written decoder reads, or null when the fields differ from it in any way. */
function fastLayout(kind: 'iothub' | 'capture', fields: readonly FieldSchema[]): IotHubLayout | CaptureLayout | null {
  const expected = kind === 'iothub' ? IOTHUB_FIELDS : CAPTURE_FIELDS;
  if (fields.length !== expected.length || fields.some((f, i) => f.name !== expected[i])) return null;
  const type = (name: string): unknown => fields.find((f) => f.name === name)?.type;
  const properties = mapValues(type('Properties'));
  const systemProperties = mapValues(type('SystemProperties'));
  const body = valueLayout(type('Body'));
  const bodyOk = body !== null && (body === 'bytes' || (isUnionOf(body, ['null', 'bytes']) && body.includes('bytes')));
  if (properties === null || systemProperties === null || !bodyOk) return null;
  if (kind === 'iothub') {
    return type('EnqueuedTimeUtc') === 'string' ? { kind, properties, systemProperties, body } : null;
  }
  const headOk = type('SequenceNumber') === 'long' && type('Offset') === 'string' && type('EnqueuedTimeUtc') === 'string';
  return headOk ? { kind, properties, systemProperties, body } : null;
}

function mapValues(type: unknown): ValueLayout | null {
  return isObject(type) && type['type'] === 'map' ? valueLayout(type['values']) : null;
}

function valueLayout(type: unknown): ValueLayout | null {
  const kind = primitiveKind(type);
  if (kind !== null) return kind;
  if (!Array.isArray(type)) return null;
  const branches = type.map(primitiveKind);
  return branches.every((b): b is PrimitiveKind => b !== null) ? branches : null;
}

function primitiveKind(type: unknown): PrimitiveKind | null {
  const name = isObject(type) && Object.keys(type).length === 1 ? type['type'] : type;
  return typeof name === 'string' && PRIMITIVES.has(name) ? (name as PrimitiveKind) : null;
}

function isUnionOf(layout: ValueLayout, allowed: readonly PrimitiveKind[]): layout is readonly PrimitiveKind[] {
  return Array.isArray(layout) && layout.every((b) => allowed.includes(b));
}

function isMapLike(type: unknown): boolean {
  if (Array.isArray(type)) return type.some(isMapLike) && type.every((t) => t === 'null' || isMapLike(t));
  return isObject(type) && type['type'] === 'map';
}

function isBytesLike(type: unknown): boolean {
  if (Array.isArray(type)) return type.includes('bytes') && type.every((t) => t === 'null' || t === 'bytes');
  return primitiveKind(type) === 'bytes';
}

function recordFullName(schema: Record<string, unknown>): string {
  const name = typeof schema['name'] === 'string' ? schema['name'] : '';
  const namespace = typeof schema['namespace'] === 'string' ? schema['namespace'] : '';
  return name.includes('.') || namespace === '' ? name : `${namespace}.${name}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
