import { describe, expect, it } from 'vitest';
import { resolveArchive } from '../../src/lib/archive/archiveDeps.js';
import { DEFAULT_ARCHIVE_CONFIG, parseArchiveConfig, parseArchiveSettings } from '../../src/lib/archive/config.js';
import { isRoutingError } from '../../src/lib/errors.js';

describe('parseArchiveConfig', () => {
  it('gives the defaults for an absent section and accepts IoT Hub endpoint values', () => {
    expect(parseArchiveConfig(undefined)).toEqual({ value: { ...DEFAULT_ARCHIVE_CONFIG } });
    expect(
      parseArchiveConfig({
        container: 'iothub-archive',
        encoding: 'AvroDeflate',
        fileNameFormat: '{YYYY}/{MM}/{DD}/{HH}/{mm}/{iothub}/{partition}.avro',
        batchFrequencySeconds: 300,
        maxChunkSizeBytes: 314_572_800,
        maxQueryRangeHours: 24,
        maxPageSize: 500,
      }),
    ).toEqual({
      value: {
        ...DEFAULT_ARCHIVE_CONFIG,
        container: 'iothub-archive',
        encoding: 'avro',
        fileNameFormat: '{YYYY}/{MM}/{DD}/{HH}/{mm}/{iothub}/{partition}.avro',
        batchFrequencySeconds: 300,
        maxChunkSizeBytes: 314_572_800,
        maxQueryRangeHours: 24,
        maxPageSize: 500,
      },
    });
  });

  it('reports every problem with its path, at once', () => {
    const result = parseArchiveConfig(
      { container: 'Bad_Name', encoding: 'csv', fileNameFormat: '{iothub}/{YYYY}', batchFrequencySeconds: 30, maxChunkSizeBytes: 1, maxPageSize: 0, colour: 'red' },
      'archive',
    );
    expect('errors' in result && result.errors).toEqual([
      expect.stringMatching(/^archive\.colour: unknown setting/),
      expect.stringMatching(/^archive\.container: "Bad_Name" is not a valid container name/),
      expect.stringMatching(/^archive\.encoding: expected "avro" or "json"/),
      expect.stringMatching(/^archive\.fileNameFormat: missing \{partition\} \{MM\} \{DD\} \{HH\} \{mm\}/),
      'archive.batchFrequencySeconds: expected a whole number from 60 to 720, got 30',
      'archive.maxChunkSizeBytes: expected a whole number from 10485760 to 524288000, got 1',
      'archive.maxPageSize: expected a whole number from 1 to 100000, got 0',
    ]);
    expect(parseArchiveConfig([], 'archive')).toEqual({ errors: ['archive: expected an object, got []'] });
  });
});

describe('archive settings', () => {
  it('lets ARCHIVE_CONTAINER win over the section and defaults the index and trigger source', () => {
    const problems: string[] = [];
    expect(parseArchiveSettings({ ARCHIVE_CONTAINER: 'from-setting' }, { container: 'from-config' }, problems)).toEqual({
      container: 'from-setting',
      indexContainer: 'archive-index',
      triggerSource: 'LogsAndContainerScan',
    });
    expect(problems).toEqual([]);
  });

  it('reports bad names, a shared container and an unknown trigger source', () => {
    const problems: string[] = [];
    parseArchiveSettings({ ARCHIVE_CONTAINER: 'same', ARCHIVE_INDEX_CONTAINER: 'same', ARCHIVE_TRIGGER_SOURCE: 'Polling' }, { container: null }, problems);
    expect(problems).toEqual([
      expect.stringMatching(/^ARCHIVE_INDEX_CONTAINER must differ from ARCHIVE_CONTAINER/),
      'ARCHIVE_TRIGGER_SOURCE: expected EventGrid or LogsAndContainerScan, got "Polling"',
    ]);
  });

  it('refuses to run the archive without a container, naming the setting', () => {
    try {
      resolveArchive(DEFAULT_ARCHIVE_CONFIG, {});
      throw new Error('expected ConfigInvalid');
    } catch (error) {
      expect(isRoutingError(error) && error.code).toBe('ConfigInvalid');
      expect((error as Error).message).toMatch(/ARCHIVE_CONTAINER is not set/);
    }
  });
});
