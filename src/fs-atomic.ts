// Files that readers must never see half-written: write to a temporary file in the same
// directory, then rename over the target.

import { randomBytes } from 'node:crypto';
import { access, chmod, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Write-then-rename in the same directory: a reader sees the old file or the new one, never half. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(temp, mode); // open()'s mode is filtered by the umask; the result must not be
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
