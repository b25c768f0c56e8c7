/**
 * Creating a file only if it does not exist, complete from its first byte: its content is written under a name of
 * its own beside it, then hard-linked into place, which fails if the file exists. A file created empty and written
 * after (`wx`) could be read empty in between. Used by the local outbox (one `.eml` per operation id) and by
 * `npm start`'s state lock.
 */
import { randomBytes } from 'node:crypto';
import { link, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** File-system errors for which a hard link is unsupported (some network and FAT mounts). */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'ENOSYS', 'EXDEV', 'EOPNOTSUPP']);

/**
 * True when this call created `file` with `content`, false when it existed. Where the file system has no hard
 * links, `withoutLinks` decides instead, given the temporary file (removed afterwards in every case).
 */
export async function createExclusive(
  file: string,
  content: string | Uint8Array,
  withoutLinks: (temporary: string) => Promise<boolean>,
): Promise<boolean> {
  // A temporary name only has to be unique among concurrent writers; it never becomes an identity.
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temporary, content, { flag: 'wx' });
  try {
    await link(temporary, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === undefined || !LINK_UNSUPPORTED.has(code)) throw error;
    return await withoutLinks(temporary);
  } finally {
    await rm(temporary, { force: true });
  }
}
