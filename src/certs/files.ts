// The serving pair on disk, in the directory CertWatcher watches (an emptyDir in a cluster: no
// kubelet Secret-sync delay, and the Secret's CA key never reaches the filesystem).

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs-atomic.js';
import { CERT_FILE, KEY_FILE } from './local.js';

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Writes the pair when it differs from the files; true when it wrote. Key first: a watcher that sees the new certificate also finds its key. */
export async function syncPair(dir: string, pair: { cert: string; key: string }): Promise<boolean> {
  const certFile = join(dir, CERT_FILE);
  const keyFile = join(dir, KEY_FILE);
  const [cert, key] = await Promise.all([readOrEmpty(certFile), readOrEmpty(keyFile)]);
  if (cert === pair.cert && key === pair.key) return false;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(keyFile, pair.key, 0o600);
  await writeFileAtomic(certFile, pair.cert, 0o644);
  return true;
}
