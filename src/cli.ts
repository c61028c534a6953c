#!/usr/bin/env node
// The usrbio command line: `usrbio config --cflags --libs`, `usrbio serve <dir>`, `usrbio stat [dir]`,
// `usrbio pack <out> --from-dir DIR | --jsonl FILE`.
import { Command, Option } from 'commander';
import pino from 'pino';
import { cflags, libs } from './config';
import { formatStats, serve, serviceStats, type Service } from './service';
import { pack } from './loader/pack';

export interface ProgramIo {
  /** Where `serve` writes its pino log lines; default stderr. */
  logFd?: number;
  /** Called with the running service once `serve` has started it. */
  onServe?: (s: Service) => void;
  /** Where `pack` draws its progress bar; default stderr when it is a terminal, else nowhere. */
  progress?: (line: string) => void;
}

/** Build the command tree; `out` receives normal output. */
export function program(out: (s: string) => void, io: ProgramIo = {}): Command {
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
  cmd
    .command('serve')
    .description('run the shared agent service for every path under <dir> in the foreground, until SIGTERM or ' +
      'SIGINT. Clients (C programs and Node engines) find it through the socket ' +
      '$USRBIO_RUN_DIR/<hash of the real path of dir>.sock (USRBIO_RUN_DIR defaults to /tmp/usrbio); ' +
      'USRBIO_SERVICE=off|auto|<socket> overrides. Logs are pino JSON lines on stderr.')
    .argument('<dir>', 'directory to serve')
    .option('--threads <n>', 'preadv/pwritev workers of the pread executor (0 = 2 x cores, 4..64)', '0')
    .addOption(new Option('--executor <kind>', 'I/O executor').choices(['auto', 'io_uring', 'pread']).default('auto'))
    .option('--max-clients <n>', 'connected client processes at most (1..65536)', '256')
    .addOption(new Option('--log-level <level>', 'least severe level logged')
      .choices(['error', 'warn', 'info', 'debug']).default('info'))
    .action(async (dir: string, opts: { threads: string; executor: 'auto' | 'io_uring' | 'pread';
      maxClients: string; logLevel: string }) => {
      const logger = pino({ name: 'usrbio', level: opts.logLevel }, pino.destination({ fd: io.logFd ?? 2, sync: true }));
      const svc = serve(dir, {
        threads: cliInt('--threads', opts.threads),
        executor: opts.executor,
        maxClients: cliInt('--max-clients', opts.maxClients),
        logger,
      });
      io.onServe?.(svc);
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          logger.info({ event: 'signal', signal }, `${signal}: stopping`);
          svc.stop();
          resolve();
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      // The native log lines of the stop arrive on the next turns; let them through.
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    });
  cmd
    .command('stat')
    .description('show the counters of the service serving [dir] (default: $USRBIO_SERVICE if it names a ' +
      'socket, else the current directory): clients, rings, iovs, in-flight I/O, bytes, IOPS, executor')
    .argument('[dir]', 'a served directory (or one under it), or a service socket')
    .option('--json', 'one JSON object, for scripts')
    .action((dir: string | undefined, opts: { json?: boolean }) => {
      const env = process.env.USRBIO_SERVICE;
      const where = dir ?? (env && env !== 'auto' && env !== 'off' ? env : process.cwd());
      const s = serviceStats(where);
      if (!s) throw new Error(`usrbio stat: no usrbio service serves ${where}`);
      out(opts.json ? JSON.stringify(s) + '\n' : formatStats(s));
    });
  cmd
    .command('pack')
    .description('write <out> in the indexed record format (FFRecord layout: header with per-sample offsets ' +
      'and CRC-32s, then the samples) for openDataset({ format: "indexed" }): one sample per regular file under ' +
      '--from-dir (sorted by path), or per non-empty line of --jsonl (a file, or - for standard input; each line ' +
      'must be JSON)')
    .argument('<out>', 'the file to write (replaced if it exists)')
    .option('--from-dir <dir>', 'a directory of sample files')
    .option('--jsonl <file>', 'a JSONL file, or - for standard input')
    .option('--json', 'print the summary as one JSON object')
    .action(async (outPath: string, opts: { fromDir?: string; jsonl?: string; json?: boolean }) => {
      if ((opts.fromDir === undefined) === (opts.jsonl === undefined)) throw new Error('usrbio pack: give one of --from-dir and --jsonl');
      /* c8 ignore next: a terminal's progress bar */
      const bar = io.progress ?? (process.stderr.isTTY ? (l: string) => process.stderr.write(l) : null);
      const t0 = performance.now();
      const r = await pack({
        out: outPath, fromDir: opts.fromDir, jsonl: opts.jsonl, progressEvery: 1000,
        onProgress: bar ? (done, total, bytes) => bar(progressLine(done, total, bytes, performance.now() - t0)) : undefined,
      });
      if (bar) bar('\n');
      const s = (performance.now() - t0) / 1000;
      out(opts.json ? JSON.stringify({ out: r.out, samples: r.samples, bytes: r.bytes }) + '\n'
        : `${r.out}: ${r.samples} samples, ${r.bytes} bytes in ${s.toFixed(2)} s\n`);
    });
  return cmd;
}

/** A progress bar line (starts with a carriage return): done/total, bytes, rate. */
export function progressLine(done: number, total: number, bytes: number, ms: number): string {
  const width = 30;
  const f = total > 0 ? done / total : 1;
  const fill = Math.round(f * width);
  const rate = ms > 0 ? (done / ms) * 1000 : 0;
  return `\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} samples, ${(bytes / 2 ** 20).toFixed(1)} MiB, ${rate.toFixed(0)}/s`;
}

function cliInt(name: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`usrbio serve: ${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
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
