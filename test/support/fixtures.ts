// Loads the upstream manifests under test/fixtures (see test/fixtures/SOURCES.md).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

export function fixture(relativePath: string): any {
  return parse(readFileSync(`${FIXTURES}${relativePath}`, 'utf8'));
}

export const daemonSet = (name: string): any => fixture(`daemonsets/${name}.yaml`);
export const pod = (name: string): any => fixture(`pods/${name}.yaml`);
