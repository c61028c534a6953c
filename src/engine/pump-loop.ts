// The worker side of an engine: one Pump per worker thread (its read and write rings), serving
// whichever channel a task hands it until the channel has been idle for idleMs. Runs in the worker
// (src/workers/pump.ts is the thin entry); tests run it in-process.
import { binding, type NativePump } from '../native';
import type { ChannelArrays } from './channel';

/** A pump task: the ring configuration and the channel to serve. */
export interface PumpTask {
  mount: string;
  ringEntries: number;
  ioDepth: number;
  timeoutMs: number;
  numa: number;
  iovId: Uint8Array;
  iovSize: number;
  channel: ChannelArrays;
  /** Engine-wide completion word: bumped and notified once per published batch. */
  notify: Int32Array;
  idleMs: number;
}

/** Longest single blocking native call, so that the thread can be terminated promptly. */
const STEP_MS = 50;

let pump: NativePump | null = null; // this thread's rings, created by the first task

/**
 * Serve `task.channel` until it has been idle for task.idleMs; returns how many completions were
 * published. The thread's rings are created on the first call and kept until the thread exits
 * (or closePump()). Blocks this thread: run it on a worker.
 */
export function pumpTask(task: PumpTask): number {
  if (pump === null) {
    pump = new binding.Pump(task.mount, task.ringEntries, task.ioDepth, task.timeoutMs, task.numa, task.iovId,
      task.iovSize);
  }
  const c = task.channel;
  pump.attach(c.header, c.sq, c.cq, c.cancel, c.id);
  let published = 0;
  try {
    for (;;) {
      const r = pump.step(STEP_MS, task.idleMs);
      if (r > 0) {
        published += r;
        Atomics.add(task.notify, 0, 1);
        Atomics.notify(task.notify, 0);
      } else if (r < 0) {
        break;
      }
    }
  } finally {
    pump.detach();
  }
  return published;
}

/** Destroy this thread's rings (waits for their I/O). The next task creates new ones. */
export function closePump(): void {
  pump?.destroy();
  pump = null;
}
