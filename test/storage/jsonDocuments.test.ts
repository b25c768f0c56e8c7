import { describe, expect, it } from 'vitest';
import { isRoutingError, RoutingError } from '../../src/lib/errors.js';
import { ManualClock, type BlobStore, type ReplaceResult } from '../../src/lib/ports.js';
import { createJson, getJson, isUndecodableDocument, updateJson } from '../../src/lib/storage/jsonDocuments.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { rejection } from '../support/rejections.js';

async function storeWith(container = 'docs'): Promise<MemoryBlobStore> {
  const store = new MemoryBlobStore();
  await store.ensureContainer(container);
  return store;
}

describe('JSON documents', () => {
  it('creates a missing document through updateJson and then mutates the stored version', async () => {
    const store = await storeWith();
    const first = await updateJson<{ n: number }>(store, 'docs', 'c.json', (c) => ({ n: (c?.n ?? 0) + 1 }));
    expect(first).toMatchObject({ value: { n: 1 }, changed: true, attempts: 1 });
    const second = await updateJson<{ n: number }>(store, 'docs', 'c.json', (c) => ({ n: (c?.n ?? 0) + 1 }));
    expect(second.value).toEqual({ n: 2 });
    expect(second.etag).not.toBe(first.etag);
    const stored = await store.get('docs', 'c.json');
    expect(stored?.contentType).toBe('application/json');
    expect(stored?.etag).toBe(second.etag);
  });

  it('writes nothing when the mutation returns undefined', async () => {
    const store = await storeWith();
    await createJson(store, 'docs', 'ledger.json', { sent: true });
    const before = await getJson(store, 'docs', 'ledger.json');
    const result = await updateJson(store, 'docs', 'ledger.json', () => undefined);
    expect(result).toEqual({ value: { sent: true }, etag: before?.etag, changed: false, attempts: 1 });
    expect((await getJson(store, 'docs', 'ledger.json'))?.etag).toBe(before?.etag);
  });

  it('throws a transient StorageConflict after the bounded number of lost races, having applied nothing', async () => {
    const inner = await storeWith();
    await createJson(inner, 'docs', 'hot.json', { n: 0 });
    // Another writer always wins between our read and our write.
    const contended: BlobStore = new Proxy(inner, {
      get(target, property) {
        if (property === 'replace') return async (): Promise<ReplaceResult> => ({ ok: false });
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    let calls = 0;
    const error = await rejection(
      updateJson<{ n: number }>(contended, 'docs', 'hot.json', (c) => {
        calls += 1;
        return { n: (c?.n ?? 0) + 1 };
      }, { retries: 3, backoffMs: () => 0 }),
    );
    expect(isRoutingError(error) && error.code).toBe('StorageConflict');
    expect(isRoutingError(error) && error.kind).toBe('transient');
    expect(calls).toBe(4);
    expect((await getJson(inner, 'docs', 'hot.json'))?.value).toEqual({ n: 0 });
  });

  it('reports a document that is not JSON, or fails decode, as StorageRejected', async () => {
    const store = await storeWith();
    await store.create('docs', 'bad.json', Buffer.from('{not json'));
    const notJson = await rejection(getJson(store, 'docs', 'bad.json'));
    expect(isRoutingError(notJson) && notJson.code).toBe('StorageRejected');

    await createJson(store, 'docs', 'shape.json', { n: 'one' });
    const decode = (raw: unknown): { n: number } => {
      if (typeof (raw as { n?: unknown }).n !== 'number') throw new Error('n must be a number');
      return raw as { n: number };
    };
    const badShape = await rejection(getJson(store, 'docs', 'shape.json', decode));
    expect(isRoutingError(badShape) && badShape.message).toContain('n must be a number');
  });

  it('marks a read blob that is not the document, through every reader, and nothing else', async () => {
    // verifyBaseWindow and the CLI tell "this blob is damaged" from "the account refused" by this mark alone, and a
    // refusal is StorageRejected too: reading one as the other sends the user to the wrong fix.
    const store = await storeWith();
    await store.create('docs', 'bad.json', Buffer.from('{not json'));
    await createJson(store, 'docs', 'shape.json', { n: 'one' });
    const decode = (raw: unknown): { n: number } => {
      if (typeof (raw as { n?: unknown }).n !== 'number') throw new Error('n must be a number');
      return raw as { n: number };
    };
    const undecodable = [
      await rejection(getJson(store, 'docs', 'bad.json')),
      await rejection(getJson(store, 'docs', 'shape.json', decode)),
      await rejection(updateJson(store, 'docs', 'bad.json', () => ({ n: 1 }))),
      await rejection(updateJson(store, 'docs', 'shape.json', () => ({ n: 1 }), { decode })),
    ];
    for (const error of undecodable) expect(isUndecodableDocument(error), String(error)).toBe(true);
    // The refusal side, a 403 from the account, is test/cli/storageUnreachable.test.ts's (Azurite, a wrong key).
    expect(isUndecodableDocument(new RoutingError('StorageRejected', 'Blob storage get docs/a.json failed: 403 AuthorizationFailure'))).toBe(false);
  });

  it('reads JSON written with a UTF-8 byte-order mark', async () => {
    const store = await storeWith();
    await store.create('docs', 'bom.json', Buffer.from('\uFEFF{"ok":true}', 'utf8'));
    expect((await getJson(store, 'docs', 'bom.json'))?.value).toEqual({ ok: true });
  });
});

describe('MemoryBlobStore specifics', () => {
  it('stamps lastModified from its clock', async () => {
    const clock = new ManualClock('2024-05-01T10:00:00Z');
    const store = new MemoryBlobStore({ clock });
    await store.ensureContainer('docs');
    await store.create('docs', 'a', Buffer.from('x'));
    clock.advance(60_000);
    await store.put('docs', 'b', Buffer.from('y'));
    const items = [];
    for await (const item of store.list('docs')) items.push(item);
    expect(items.map((item) => item.lastModified.toISOString())).toEqual([
      '2024-05-01T10:00:00.000Z',
      '2024-05-01T10:01:00.000Z',
    ]);
  });

  it('does not let callers mutate stored bytes through the buffers they passed or received', async () => {
    const store = await storeWith();
    const body = Buffer.from('abc');
    await store.create('docs', 'a', body);
    body[0] = 0x7a;
    const read = await store.get('docs', 'a');
    if (read !== null) read.body[1] = 0x7a;
    expect((await store.get('docs', 'a'))?.body.toString()).toBe('abc');
  });

  it('rejects invalid container names like Azure does', async () => {
    const error = await rejection(new MemoryBlobStore().ensureContainer('Bad_Name'));
    expect(isRoutingError(error) && error.code).toBe('StorageRejected');
  });
});
