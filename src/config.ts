// pkg-config style compiler and linker flags for C and C++ programs using the USRBIO API.
import { includeDir, libDir } from './paths';

/** Flags to compile a C or C++ file that includes <hf3fs_usrbio.h>. */
export function cflags(): string {
  return `-I${includeDir}`;
}

/** Flags to link against libhf3fs_usrbio.so; the rpath lets the program run without LD_LIBRARY_PATH. */
export function libs(): string {
  return `-L${libDir} -Wl,-rpath,${libDir} -lhf3fs_usrbio`;
}
