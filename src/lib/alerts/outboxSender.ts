/**
 * {@link EmailSender} for the local runtime: each e-mail becomes `<operationId>.eml` (RFC 5322, MIME
 * multipart/alternative) in a directory, which any mail client opens.
 *
 * Effectively-once: the file name is the operation id, and the file appears only complete and only once. It is
 * written under a temporary name and then hard-linked to its final name, which fails if that name exists; a send
 * that finds the file already there reports `sent` without rewriting it, like ACS answering a repeated Operation-Id.
 */

import { mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RoutingError } from '../errors.js';
import { createExclusive } from '../exclusiveFile.js';
import { systemClock, type Clock } from '../ports.js';
import { checkEmailMessage, localRejection, type EmailMessage, type EmailSender, type SendResult } from './email.js';
import { renderEml } from './mime.js';

export interface OutboxSenderOptions {
  /** Created if missing. */
  directory: string;
  /** Source of the Date header. */
  clock?: Clock;
}

export function createOutboxSender(options: OutboxSenderOptions): EmailSender {
  const clock = options.clock ?? systemClock;
  return {
    async lookup(message: EmailMessage): Promise<SendResult | null> {
      const fileName = `${message.operationId.toLowerCase()}.eml`;
      try {
        return (await exists(join(options.directory, fileName))) ? { status: 'sent', operationId: message.operationId, providerId: fileName } : null;
      } catch (error) {
        throw new RoutingError('EmailUnavailable', `outbox ${options.directory}: cannot look for ${fileName}: ${String(error)}`, { cause: error });
      }
    },

    async send(message: EmailMessage): Promise<SendResult> {
      const checked = checkEmailMessage(message);
      if (!checked.ok) return localRejection(message, checked.problems);
      const email = checked.message;
      // The operation id is a UUID (checked above), so it is a safe file name on every platform.
      const fileName = `${email.operationId.toLowerCase()}.eml`;
      const finalPath = join(options.directory, fileName);
      const sent: SendResult = { status: 'sent', operationId: message.operationId, providerId: fileName };
      try {
        await mkdir(options.directory, { recursive: true });
        if (await exists(finalPath)) return sent;
        await createExclusive(finalPath, renderEml(email, { date: clock.now() }), async (temporary) => {
          // Without links, rename is still atomic; two racing first sends may then both write, with equal content.
          if (await exists(finalPath)) return false;
          await rename(temporary, finalPath);
          return true;
        });
        return sent;
      } catch (error) {
        const problem = `outbox ${options.directory}: cannot write ${fileName}: ${String(error)}`;
        throw new RoutingError('EmailUnavailable', problem, { cause: error });
      }
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

function errorCode(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}
