#!/usr/bin/env node
// The usrbio command line: `usrbio config --cflags --libs`.
import { Command } from 'commander';
import { cflags, libs } from './config';

/** Build the command tree; `out` receives normal output. */
export function program(out: (s: string) => void): Command {
  const cmd = new Command('usrbio').description('USRBIO for Node.js and C').exitOverride();
  cmd
    .command('config')
    .description('print compiler/linker flags for programs using <hf3fs_usrbio.h> (pkg-config style)')
    .option('--cflags', 'compiler flags')
    .option('--libs', 'linker flags')
    .action((opts: { cflags?: boolean; libs?: boolean }) => {
      if (!opts.cflags && !opts.libs) throw new Error('usrbio config: give --cflags, --libs or both');
      const parts: string[] = [];
      if (opts.cflags) parts.push(cflags());
      if (opts.libs) parts.push(libs());
      out(parts.join(' ') + '\n');
    });
  return cmd;
}

/* c8 ignore start */
if (require.main === module) {
  program((s) => process.stdout.write(s))
    .parseAsync(process.argv)
    .catch((err: { exitCode?: number; code?: string; message?: string }) => {
      if (typeof err.exitCode === 'number' && err.code?.startsWith('commander.')) process.exit(err.exitCode);
      process.stderr.write(`${err.message ?? String(err)}\n`);
      process.exit(1);
    });
}
/* c8 ignore stop */
