// A channel: the SharedArrayBuffer queues between the main thread and one worker's pump.
// The layout is mirrored in native/addon/pump.cc.
import { binding } from '../native';

/** Int32 header word indices, each on its own 64-byte line. */
export const SQ_TAIL = 0;
export const SQ_HEAD = 16;
export const CQ_TAIL = 32;
export const CQ_HEAD = 48;
export const STATE = 64;
const HEADER_WORDS = 128;
/** SQ entry: [id, op, fd, fileOffset, length, iovOffset]; CQ entry: [id, result]. */
export const SQ_FIELDS = 6;
export const CQ_FIELDS = 2;
export const OP_READ = 0;
export const OP_WRITE = 1;

/** Pump states (header word STATE). */
export const DETACHED = 0;
export const RUNNING = 1;
export const SLEEP_READ = 2;
export const SLEEP_WRITE = 3;
export const EXITING = 4;
export const DEAD = 5;

// Channel.publish() results.
export const NONE = 0;
export const PUBLISHED = 1;
export const SELF_COMPLETED = 2;

/** What a pump task needs of a channel; typed arrays over one SharedArrayBuffer. */
export interface ChannelArrays {
  header: Int32Array;
  sq: Float64Array;
  cq: Float64Array;
  cancel: Int32Array;
  id: number;
}

let nextChannelId = 1;

/**
 * The main thread's side of a channel. Invariant: at most `cap` requests are outstanding (pushed
 * and not yet drained), so neither queue overflows; positions run free as int32.
 */
export class Channel {
  readonly cap: number;
  readonly arrays: ChannelArrays;
  /** Requests pushed and not yet drained from the CQ. */
  outstanding = 0;
  #mask: number;
  #sqTail = 0; // next SQ position to fill (published by publish())
  #published = 0; // SQ tail as last published
  #cqHead = 0;

  /** `cap` must be a power of two. */
  constructor(cap: number) {
    this.cap = cap;
    this.#mask = cap - 1;
    const bytes = HEADER_WORDS * 4 + cap * SQ_FIELDS * 8 + cap * CQ_FIELDS * 8 + cap * 4;
    const sab = new SharedArrayBuffer(bytes);
    let off = HEADER_WORDS * 4;
    const header = new Int32Array(sab, 0, HEADER_WORDS);
    const sq = new Float64Array(sab, off, cap * SQ_FIELDS);
    off += cap * SQ_FIELDS * 8;
    const cq = new Float64Array(sab, off, cap * CQ_FIELDS);
    off += cap * CQ_FIELDS * 8;
    const cancel = new Int32Array(sab, off, cap);
    this.arrays = { header, sq, cq, cancel, id: nextChannelId++ };
  }

  /** Room for another request. */
  get full(): boolean {
    return this.outstanding >= this.cap;
  }

  /** Queue one request (not visible to the pump until publish()); returns its SQ position. */
  push(id: number, op: number, fd: number, fileOffset: number, length: number, iovOffset: number): number {
    const pos = this.#sqTail;
    const i = pos & this.#mask;
    const sq = this.arrays.sq;
    const b = i * SQ_FIELDS;
    this.arrays.cancel[i] = 0;
    sq[b] = id;
    sq[b + 1] = op;
    sq[b + 2] = fd;
    sq[b + 3] = fileOffset;
    sq[b + 4] = length;
    sq[b + 5] = iovOffset;
    this.#sqTail = (pos + 1) | 0;
    this.outstanding++;
    return pos;
  }

  /**
   * Publish pushed requests. While a pump serves the channel, this thread prepares them into the
   * pump's rings and submits them at once (one native call); otherwise the pump takes them when
   * it runs. Returns NONE when nothing was new, PUBLISHED, or SELF_COMPLETED when some requests
   * completed during preparation (cancelled, or refused by hf3fs_prep_io): their completions are
   * in the CQ and nobody else will notify the caller of them.
   */
  publish(): number {
    if (this.#published === this.#sqTail) return NONE;
    this.#published = this.#sqTail;
    Atomics.store(this.arrays.header, SQ_TAIL, this.#sqTail);
    return binding.pull(this.arrays.id) > 0 ? SELF_COMPLETED : PUBLISHED;
  }

  /** Ask the pump to skip the request at SQ position `pos` if it has not taken it yet. */
  cancel(pos: number): void {
    Atomics.store(this.arrays.cancel, pos & this.#mask, 1);
  }

  /** Requests published and not yet taken by a pump. */
  get unsubmitted(): number {
    return (this.#published - Atomics.load(this.arrays.header, SQ_HEAD)) | 0;
  }

  get state(): number {
    return Atomics.load(this.arrays.header, STATE);
  }

  /** True when the CQ holds completions not yet drained. */
  get completions(): boolean {
    return Atomics.load(this.arrays.header, CQ_TAIL) !== this.#cqHead;
  }

  /** Hand up to `max` completions from the CQ to `done(id, result)`; returns how many. */
  drain(done: (id: number, result: number) => void, max: number): number {
    const h = this.arrays.header;
    const tail = Atomics.load(h, CQ_TAIL);
    let head = this.#cqHead;
    if (head === tail) return 0;
    const cq = this.arrays.cq;
    let n = 0;
    while (head !== tail && n < max) {
      const b = (head & this.#mask) * CQ_FIELDS;
      head = (head + 1) | 0;
      n++;
      done(cq[b], cq[b + 1]);
    }
    this.#cqHead = head;
    Atomics.store(h, CQ_HEAD, head);
    this.outstanding -= n;
    return n;
  }

  /**
   * After its pump died: forget everything outstanding and take a fresh id, so that a new pump
   * starts from an empty channel. Call only once the state is DETACHED or DEAD.
   */
  reset(): void {
    this.arrays.header.fill(0);
    this.arrays.cancel.fill(0);
    this.arrays.id = nextChannelId++;
    this.#sqTail = this.#published = this.#cqHead = 0;
    this.outstanding = 0;
  }
}
