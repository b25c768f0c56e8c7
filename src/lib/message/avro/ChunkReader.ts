/**
 * Pulls chunks from an async byte source only as far as the caller asks, so memory stays at what the caller needs
 * contiguous (one Avro block) plus at most one chunk, however large the input. Chunks are kept by reference:
 * the source must not reuse a chunk's memory after yielding it (Node streams and the Storage SDK do not).
 */
const CONSUMED = Buffer.alloc(0);

export class ChunkReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  #chunks: Buffer[] = [];
  /**
   * Index of the first unconsumed chunk. A consumed chunk's slot is cleared at once (its memory is the input's, and
   * a chunk is always partly read when blocks and chunks do not line up); the slots are compacted in batches rather
   * than shifted one at a time.
   */
  #first = 0;
  /** Offset of the first unconsumed byte inside `#chunks[#first]`. */
  #head = 0;
  #buffered = 0;
  #ended = false;
  /** Bytes consumed since the start of the input. */
  position = 0;
  /** Bytes pulled from the input so far. */
  received = 0;

  constructor(input: AsyncIterable<Uint8Array>) {
    this.#iterator = input[Symbol.asyncIterator]();
  }

  get buffered(): number {
    return this.#buffered;
  }

  /** Pulls until `n` bytes are buffered; false when the input ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.#buffered < n && !this.#ended) {
      const next = await this.#iterator.next();
      if (next.done === true) {
        this.#ended = true;
        break;
      }
      const chunk = next.value;
      if (chunk.byteLength === 0) continue;
      this.#chunks.push(
        Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      );
      this.#buffered += chunk.byteLength;
      this.received += chunk.byteLength;
    }
    return this.#buffered >= n;
  }

  /** Up to `n` buffered bytes, contiguous, without consuming them. */
  peek(n: number): Buffer {
    return this.#read(Math.min(n, this.#buffered), false);
  }

  /** Consumes `n` buffered bytes; a view when they lie in one chunk, a copy when they span several. */
  take(n: number): Buffer {
    if (n > this.#buffered) throw new RangeError(`take(${n}) with ${this.#buffered} bytes buffered`);
    return this.#read(n, true);
  }

  /** Consumes `n` buffered bytes into memory of their own, shared with no chunk: a copy, even within one chunk. */
  takeCopy(n: number): Buffer {
    if (n > this.#buffered) throw new RangeError(`takeCopy(${n}) with ${this.#buffered} bytes buffered`);
    return this.#read(n, true, true);
  }

  skip(n: number): void {
    this.take(n);
  }

  /** Stops the source (a download stream is destroyed) when the caller will not read to the end. */
  async close(): Promise<void> {
    this.#chunks = [];
    this.#first = 0;
    this.#head = 0;
    this.#buffered = 0;
    if (this.#ended) return;
    this.#ended = true;
    await this.#iterator.return?.();
  }

  #read(n: number, consume: boolean, copy = false): Buffer {
    const chunks = this.#chunks;
    const current = chunks[this.#first];
    if (current === undefined || n === 0) return Buffer.alloc(0);
    if (!copy && this.#head + n <= current.length) {
      const view = current.subarray(this.#head, this.#head + n);
      if (consume) this.#consume(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let index = this.#first;
    let offset = this.#head;
    while (copied < n) {
      const chunk = chunks[index]!;
      const count = Math.min(n - copied, chunk.length - offset);
      chunk.copy(out, copied, offset, offset + count);
      copied += count;
      index++;
      offset = 0;
    }
    if (consume) this.#consume(n);
    return out;
  }

  #consume(n: number): void {
    this.#buffered -= n;
    this.position += n;
    let head = this.#head + n;
    const chunks = this.#chunks;
    while (this.#first < chunks.length && head >= chunks[this.#first]!.length) {
      head -= chunks[this.#first]!.length;
      chunks[this.#first] = CONSUMED;
      this.#first++;
    }
    this.#head = head;
    if (this.#first === chunks.length) {
      this.#chunks = [];
      this.#first = 0;
    } else if (this.#first > 1024) {
      this.#chunks = chunks.slice(this.#first);
      this.#first = 0;
    }
  }
}
