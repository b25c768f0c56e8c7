/**
 * The one message model every decoder produces, whatever endpoint or encoding the message came through.
 * See DESIGN.md section 3.
 */

import type { TopLevelNumbers } from './jsonScan.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Application and system property values as the endpoints deliver them (Avro `bytes` values become strings). */
export type PropertyValue = string | number | boolean | null;

export type Charset = 'utf-8' | 'utf-16le' | 'utf-16be' | 'utf-32le' | 'utf-32be';

/**
 * How the body bytes were turned into the decoded view. Recorded so that checks can explain what the device should
 * change (a body stored as base64 means IoT Hub did not know it was UTF-8 JSON).
 */
export interface BodyDecoding {
  /**
   * `storage`: the endpoint stored the body as base64 (IoT Hub JSON encoding without contentType/contentEncoding);
   * `detected`: the body bytes themselves were base64 text wrapping the payload; `null`: no base64 layer.
   */
  base64: 'storage' | 'detected' | null;
  /** The character set the text was decoded with; null for binary bodies. */
  charset: Charset | null;
  /** True when a byte-order mark was present (and removed). */
  bom: boolean;
  /** True when contentType/contentEncoding declared the body and that declaration was honoured. */
  declared: boolean;
  /** Why the body could not be decoded as declared or as JSON; absent when nothing went wrong. */
  problem?: BodyProblem;
}

export type BodyProblemCode =
  /** contentType says JSON (or the bytes look like JSON) but they do not parse. */
  | 'BodyNotJson'
  /** contentEncoding names a character set we cannot decode, or the bytes are not valid in it. */
  | 'BodyEncodingUnsupported';

export interface BodyProblem {
  code: BodyProblemCode;
  detail: string;
}

/**
 * Read a decoded body by its fields: `value` may be an accessor that parses on first read (body.ts, `LazyJsonBody`),
 * so a spread or `Object.keys` need not show it. `JSON.stringify` writes every body alike, and `plainBody` gives the
 * plain object.
 */
export type DecodedBody =
  | {
      kind: 'json';
      value: JsonValue;
      decodedFrom: BodyDecoding;
      /**
       * The top-level numeric members, when the decoder scanned them; the aggregation reads these instead of walking
       * `value`. Not enumerable, never serialized.
       */
      numbers?: TopLevelNumbers;
    }
  | { kind: 'text'; value: string; decodedFrom: BodyDecoding }
  /** `value` is the body bytes in base64. */
  | { kind: 'binary'; value: string; decodedFrom: BodyDecoding };

export type ArchiveFormat = 'avro-iothub' | 'avro-capture' | 'json-lines' | 'empty';

/** Provenance: where a message was read. Never part of its identity (offsets change on failover). */
export type MessageSource =
  | {
      kind: 'eventHub';
      partitionId: string | null;
      sequenceNumber: number | null;
      offset: string | null;
    }
  | {
      kind: 'serviceBus';
      queue: string | null;
      sequenceNumber: number | null;
      deliveryCount: number | null;
    }
  | {
      kind: 'blob';
      /** Blob name, or a file path when read by the CLI. */
      blobName: string;
      /** Zero-based record index within the blob. */
      index: number;
      format: ArchiveFormat;
      /** Event Hubs Capture records carry their own sequence number and offset. */
      sequenceNumber: number | null;
      offset: string | null;
    };

export interface RoutedMessage {
  /** `iothub-connection-device-id`; null when the record carries none (Capture from a non-IoT Hub sender). */
  deviceId: string | null;
  moduleId?: string;
  /** The device's `message-id`, when it set one. */
  messageId?: string;
  /**
   * From `iothub-enqueuedtime` / `enqueuedTime`, else the endpoint's own time (`EnqueuedTimeUtc`; Capture records take
   * their `x-opt-enqueued-time` first, which has the milliseconds); null when absent or unparseable.
   */
  enqueuedTime: Date | null;
  contentType?: string;
  contentEncoding?: string;
  /**
   * Application properties, enrichments included. Keys are as the endpoint delivered them: the storage encodings keep
   * the device's case, while the Functions Node library lower-cases the first letter of trigger metadata keys
   * (`Level` arrives as `level`); look them up with `lookupProperty`, which ignores case as IoT Hub does.
   */
  properties: Record<string, PropertyValue>;
  /** System properties with their original keys (`iothub-*`, `x-opt-*`, or IoT Hub storage names). */
  systemProperties: Record<string, PropertyValue>;
  /** The body bytes as the device sent them (after removing any storage base64 layer). */
  body: Uint8Array;
  decoded: DecodedBody;
  source: MessageSource;
}
