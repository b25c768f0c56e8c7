import type { DecodedBody } from './RoutedMessage.js';

export interface BodyDeclaration {
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  /** The endpoint stored these bytes as base64 and they were already unwrapped by the caller. */
  storedAsBase64?: boolean;
}

/**
 * Turns body bytes into a decoded view. Never throws: undecodable bytes become `binary` with a `problem`.
 * PLACEHOLDER: UTF-8 JSON only; the full implementation (declared encodings, base64 and UTF-16/32 detection)
 * replaces this.
 */
export function decodeBody(bytes: Uint8Array, declaration: BodyDeclaration = {}): DecodedBody {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const decodedFrom = {
    base64: declaration.storedAsBase64 === true ? ('storage' as const) : null,
    charset: 'utf-8' as const,
    bom: false,
    declared: false,
  };
  try {
    return { kind: 'json', value: JSON.parse(text) as never, decodedFrom };
  } catch {
    return { kind: 'text', value: text, decodedFrom };
  }
}
