import type { ArchiveFormat, RoutedMessage } from './RoutedMessage.js';

/** What went wrong with an archive file. Every complete record before the damage is still delivered. */
export interface ArchiveDamage {
  code: 'ArchiveTruncated' | 'ArchiveCorrupt' | 'ArchiveFormatUnknown';
  detail: string;
  /** Byte offset in the file where the damage starts. */
  byteOffset: number;
}

export interface ArchiveSummary {
  format: ArchiveFormat | 'unknown';
  /** Avro codec; absent for JSON-lines and empty files. */
  codec?: 'null' | 'deflate';
  records: number;
  bytes: number;
  damage: ArchiveDamage | null;
}

/**
 * Archive readers yield records in batches (one Avro block, or a run of JSON lines) and always finish with exactly
 * one `end` event, whose summary says whether the whole file decoded.
 */
export type ArchiveEvent =
  | { type: 'records'; messages: RoutedMessage[] }
  | { type: 'end'; summary: ArchiveSummary };

export interface ArchiveSourceInfo {
  /** Blob name or file path, recorded in each message's `source`. */
  name: string;
}
