import { readAvro } from './avro/readAvro.js';
import type { ArchiveEvent, ArchiveSourceInfo } from './archive.js';
import { readJsonLines } from './jsonLines.js';

const AVRO_MAGIC = [0x4f, 0x62, 0x6a, 0x01]; // "Obj\x01"

/**
 * Reads any archive file IoT Hub or Event Hubs Capture writes, choosing the decoder from the first bytes rather
 * than the blob name (IoT Hub names Avro blobs without an extension, and the name format is configurable).
 * Zero bytes is IoT Hub's empty batch and is not an error.
 */
export async function* readArchive(
  input: AsyncIterable<Uint8Array>,
  info: ArchiveSourceInfo,
): AsyncGenerator<ArchiveEvent> {
  const iterator = input[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headLength = 0;
  // Pull just enough to sniff; the chunks are replayed to the chosen decoder, nothing is copied.
  while (headLength < AVRO_MAGIC.length) {
    const next = await iterator.next();
    if (next.done === true) break;
    if (next.value.byteLength === 0) continue;
    head.push(next.value);
    headLength += next.value.byteLength;
  }
  const replay = replayThen(head, iterator);
  if (headLength === 0) {
    yield { type: 'end', summary: { format: 'empty', records: 0, bytes: 0, damage: null } };
    return;
  }
  const prefix = Buffer.concat(head.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
  if (AVRO_MAGIC.every((byte, i) => prefix[i] === byte)) {
    yield* readAvro(replay, info);
    return;
  }
  // Tools that re-save JSON lines may prepend a UTF-8 byte-order mark; readJsonLines strips it.
  const bom = prefix[0] === 0xef && prefix[1] === 0xbb && prefix[2] === 0xbf ? 3 : 0;
  const firstVisible = prefix.subarray(bom).find((byte) => byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09);
  if (firstVisible === 0x7b /* { */ || firstVisible === undefined) {
    yield* readJsonLines(replay, info);
    return;
  }
  // Drain nothing more: an unknown format is reported at once instead of reading a possibly huge blob.
  await iterator.return?.();
  yield {
    type: 'end',
    summary: {
      format: 'unknown',
      records: 0,
      bytes: headLength,
      damage: {
        code: 'ArchiveFormatUnknown',
        byteOffset: 0,
        detail: `not an Avro container (no "Obj\\x01" magic) nor IoT Hub JSON lines (first byte 0x${(firstVisible ?? 0).toString(16).padStart(2, '0')})`,
      },
    },
  };
}

async function* replayThen(
  head: readonly Uint8Array[],
  rest: AsyncIterator<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  try {
    yield* head;
    for (;;) {
      const next = await rest.next();
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    // A decoder that stops on damage, or a consumer that stops early, must release the download stream too.
    await rest.return?.();
  }
}
