/**
 * Decoded documents by blob name and ETag, least recently used first out.
 *
 * Why: the dashboard refreshes every ten seconds, and nearly every document it reads (closed windows, finished
 * alerts, manifests of indexed blobs) has not changed since the last refresh. A listing returns each blob's ETag
 * anyway, so an entry is used only when its ETag equals the one just listed: a changed blob is always read again,
 * an unchanged one never is. Entries are shared between requests, so callers must treat them as read-only.
 */
import type { ETag } from '../ports.js';

export class EtagCache {
  readonly #entries = new Map<string, { etag: ETag; value: unknown }>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, etag: ETag): unknown {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.etag !== etag) return undefined;
    // Map order is insertion order: re-inserting marks it most recently used.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  set(key: string, etag: ETag, value: unknown): void {
    if (this.#capacity <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { etag, value });
    if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
  }
}
