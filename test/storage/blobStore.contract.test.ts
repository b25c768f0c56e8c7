import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { isRoutingError } from '../../src/lib/errors.js';
import type { BlobItem, BlobPrefix, BlobStore } from '../../src/lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { getJson, updateJson } from '../../src/lib/storage/jsonDocuments.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { rejection } from '../support/rejections.js';

/**
 * One set of assertions, two implementations: whatever a unit test proves with MemoryBlobStore holds against
 * Azure Storage (here Azurite) because both are held to this file.
 */

const azurite = useAzurite();

const implementations: { name: string; make: () => BlobStore }[] = [
  { name: 'MemoryBlobStore', make: () => new MemoryBlobStore() },
  {
    name: 'AzureBlobStore on Azurite',
    make: () => new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite().connectionString })),
  },
];

const utf8 = (text: string) => Buffer.from(text, 'utf8');

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const result: T[] = [];
  for await (const item of items) result.push(item);
  return result;
}

describe.each(implementations)('BlobStore contract: $name', ({ make }) => {
  let store: BlobStore;
  let container: string;

  beforeEach(async () => {
    store = make();
    container = uniqueContainerName('contract');
    await store.ensureContainer(container);
  });

  it('reports a missing blob as null / notFound, not as an error', async () => {
    expect(await store.get(container, 'nope.json')).toBeNull();
    expect(await store.openRead(container, 'nope.json')).toBeNull();
    expect(await store.delete(container, 'nope.json')).toEqual({ deleted: false, reason: 'notFound' });
    expect(await store.delete(container, 'nope.json', '"0x8DC000000000001"')).toEqual({
      deleted: false,
      reason: 'notFound',
    });
    expect(await store.get(uniqueContainerName('missing'), 'nope.json')).toBeNull();
  });

  it('ensureContainer is idempotent', async () => {
    await store.ensureContainer(container);
    await store.ensureContainer(container);
    expect((await store.create(container, 'a', utf8('x'))).created).toBe(true);
  });

  it('create twice: the second is { created: false } with the first etag and leaves the first body', async () => {
    const first = await store.create(container, 'alerts/key-1.json', utf8('{"n":1}'), {
      contentType: 'application/json',
    });
    expect(first.created).toBe(true);

    const second = await store.create(container, 'alerts/key-1.json', utf8('{"n":2}'));
    expect(second).toEqual({ created: false, etag: first.etag });

    const stored = await store.get(container, 'alerts/key-1.json');
    expect(stored?.body.toString()).toBe('{"n":1}');
    expect(stored?.etag).toBe(first.etag);
    expect(stored?.contentType).toBe('application/json');
  });

  it('round-trips body, content type and metadata (keys come back lower-cased)', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254]);
    const created = await store.create(container, 'q/2024/raw.bin', body, { metadata: { reasonCode: 'BadJson' } });
    const stored = await store.get(container, 'q/2024/raw.bin');
    expect(stored).not.toBeNull();
    expect(stored?.body.equals(body)).toBe(true);
    expect(stored?.etag).toBe(created.etag);
    expect(stored?.metadata).toEqual({ reasoncode: 'BadJson' });
    expect(stored?.contentType).toBe('application/octet-stream');
    expect(stored?.lastModified).toBeInstanceOf(Date);
  });

  it('keeps names with spaces, plus signs and non-ASCII characters intact', async () => {
    const name = 'devices/thermo stat+1/Zürich #2.json';
    await store.create(container, name, utf8('{}'));
    expect((await store.get(container, name))?.body.toString()).toBe('{}');
    expect((await collect(store.list(container, 'devices/'))).map((item) => item.name)).toEqual([name]);
  });

  it('replace succeeds only with the current etag', async () => {
    const { etag: v1 } = await store.create(container, 'doc.json', utf8('v1'));
    const second = await store.replace(container, 'doc.json', utf8('v2'), v1, { contentType: 'text/plain' });
    expect(second.ok).toBe(true);
    if (!second.ok) return;
    expect(second.etag).not.toBe(v1);

    expect(await store.replace(container, 'doc.json', utf8('stale'), v1)).toEqual({ ok: false });
    const stored = await store.get(container, 'doc.json');
    expect(stored?.body.toString()).toBe('v2');
    expect(stored?.etag).toBe(second.etag);
    expect(stored?.contentType).toBe('text/plain');
  });

  it('replace of a blob that does not exist (or was deleted since the read) is { ok: false }', async () => {
    const { etag } = await store.create(container, 'gone.json', utf8('x'));
    await store.delete(container, 'gone.json');
    expect(await store.replace(container, 'gone.json', utf8('y'), etag)).toEqual({ ok: false });
    expect(await store.get(container, 'gone.json')).toBeNull();
  });

  it('changes the etag on every write, even with identical bytes', async () => {
    const first = await store.put(container, 'same.bin', utf8('same'));
    const second = await store.put(container, 'same.bin', utf8('same'));
    expect(second.etag).not.toBe(first.etag);
    expect((await store.get(container, 'same.bin'))?.etag).toBe(second.etag);
  });

  it('delete honours the etag condition', async () => {
    const { etag: v1 } = await store.create(container, 'd.json', utf8('1'));
    const { etag: v2 } = await store.put(container, 'd.json', utf8('2'));
    expect(await store.delete(container, 'd.json', v1)).toEqual({ deleted: false, reason: 'conditionNotMet' });
    expect(await store.get(container, 'd.json')).not.toBeNull();
    expect(await store.delete(container, 'd.json', v2)).toEqual({ deleted: true });
    expect(await store.get(container, 'd.json')).toBeNull();
    expect(await store.delete(container, 'd.json')).toEqual({ deleted: false, reason: 'notFound' });
  });

  it('rejects writes to a container that does not exist (permanent), reads it as empty', async () => {
    const missing = uniqueContainerName('missing');
    for (const write of [
      () => store.create(missing, 'a', utf8('x')),
      () => store.put(missing, 'a', utf8('x')),
      () => store.replace(missing, 'a', utf8('x'), '"0x8DC000000000001"'),
    ]) {
      const error = await rejection(write());
      expect(isRoutingError(error) && error.code).toBe('StorageRejected');
    }
    expect(await collect(store.list(missing, ''))).toEqual([]);
    expect(await collect(store.listHierarchy(missing, '', { delimiter: '/' }))).toEqual([]);
  });

  it('updateJson under 20 concurrent increments ends with the exact count', async () => {
    const increments = 20;
    const results = await Promise.all(
      Array.from({ length: increments }, () =>
        updateJson<{ count: number }>(store, container, 'counters/budget.json', (current) => ({
          count: (current?.count ?? 0) + 1,
        }), { retries: increments, backoffMs: () => 0 }),
      ),
    );
    const final = await getJson<{ count: number }>(store, container, 'counters/budget.json');
    expect(final?.value).toEqual({ count: increments });
    expect(results.every((result) => result.changed)).toBe(true);
    // Every count from 1 to 20 was written exactly once: no increment was lost or applied twice.
    expect(results.map((result) => result.value?.count).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
      Array.from({ length: increments }, (_, i) => i + 1),
    );
    expect(results.some((result) => result.attempts > 1)).toBe(true);
  });

  it('lists by prefix in name order across pages, with the same etags as reads', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `reports/dev-${String(i).padStart(3, '0')}.json`);
    await Promise.all(names.map((name) => store.create(container, name, utf8(name))));
    await store.create(container, 'reportsX/other.json', utf8('x'));
    await store.create(container, 'alerts/one.json', utf8('x'));

    const listed = await collect(store.list(container, 'reports/', { pageSize: 7 }));
    expect(listed.map((item) => item.name)).toEqual(names);
    expect(listed.every((item) => item.kind === 'blob' && item.size === item.name.length)).toBe(true);
    const sample = listed[13] as BlobItem;
    expect(sample.etag).toBe((await store.get(container, sample.name))?.etag);
    expect(sample.lastModified).toBeInstanceOf(Date);

    expect(await collect(store.list(container))).toHaveLength(52);
  });

  it('lists one level of the hierarchy with a delimiter, across pages, without repeating prefixes', async () => {
    const names = [
      'archive/hub/00/2024/01/01/00/00.avro',
      'archive/hub/00/2024/01/01/00/05.avro',
      'archive/hub/00/2024/01/02/00/00.avro',
      'archive/hub/01/2024/01/01/00/00.avro',
      'archive/hub/02/2024/01/01/00/00.avro',
      'archive/hub/index.json',
      'archive/hub/readme.txt',
      'archive/other/00.avro',
    ];
    await Promise.all(names.map((name) => store.create(container, name, utf8('x'))));

    const expected = [
      { kind: 'prefix', name: 'archive/hub/00/' },
      { kind: 'prefix', name: 'archive/hub/01/' },
      { kind: 'prefix', name: 'archive/hub/02/' },
      { kind: 'blob', name: 'archive/hub/index.json' },
      { kind: 'blob', name: 'archive/hub/readme.txt' },
    ];
    const summary = (entries: (BlobItem | BlobPrefix)[]) => entries.map(({ kind, name }) => ({ kind, name }));
    for (const pageSize of [1, 2, 100]) {
      const entries = await collect(store.listHierarchy(container, 'archive/hub/', { delimiter: '/', pageSize }));
      expect(summary(entries), `pageSize ${pageSize}`).toEqual(expected);
    }
    const top = await collect(store.listHierarchy(container, '', { delimiter: '/' }));
    expect(summary(top)).toEqual([{ kind: 'prefix', name: 'archive/' }]);
  });

  it('openRead streams a multi-MB blob in several chunks and pins the version it opened', async () => {
    const size = 6 * 1024 * 1024 + 123;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i += 1) body[i] = (i * 31 + (i >> 11)) & 0xff;
    const { etag } = await store.put(container, 'archive/big.avro', body, { contentType: 'avro/binary' });

    const stream = await store.openRead(container, 'archive/big.avro');
    expect(stream).not.toBeNull();
    if (stream === null) return;
    expect(stream.etag).toBe(etag);
    expect(stream.size).toBe(size);
    expect(stream.contentType).toBe('avro/binary');

    const hash = createHash('sha256');
    let chunks = 0;
    let bytes = 0;
    for await (const chunk of stream.chunks) {
      chunks += 1;
      bytes += chunk.byteLength;
      hash.update(chunk);
    }
    expect(bytes).toBe(size);
    expect(chunks).toBeGreaterThan(1);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('openRead can be abandoned early without leaking the download', async () => {
    await store.put(container, 'archive/partial.avro', Buffer.alloc(3 * 1024 * 1024, 7));
    const stream = await store.openRead(container, 'archive/partial.avro');
    for await (const chunk of stream?.chunks ?? []) {
      expect(chunk.byteLength).toBeGreaterThan(0);
      break;
    }
    // The store stays usable after the abandoned read.
    expect((await store.create(container, 'after.json', utf8('{}'))).created).toBe(true);
  });
});
