// Where the built native artefacts and public headers live, for the CLI and the tests.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The package root (the directory holding package.json). */
export const packageRoot: string = resolve(__dirname, '..');

/** Directory of the public C headers (hf3fs_usrbio.h, usrbio_ext.h). */
export const includeDir: string = join(packageRoot, 'native', 'include');

/** Directory of libhf3fs_usrbio.so and the Node addon, as built by `npm install`. */
export const libDir: string = join(packageRoot, 'build', 'Release');

/** Absolute path of the shared library. */
export const libraryPath: string = join(libDir, 'libhf3fs_usrbio.so');

/** True when `npm install` has built the native code. */
export function isBuilt(): boolean {
  return existsSync(libraryPath) && existsSync(join(libDir, 'usrbio.node'));
}
