// Every option of every request call is validated at the edge: a TypeError/RangeError naming the
// option and what it must be, before anything is submitted.
import t from 'tap';
import usrbio, { createEngine } from '../src/index';
import { dataFile } from './fixtures/engine';

t.test('request options: signal, timeoutMs, unknown keys, non-objects', async (t) => {
  const f = dataFile(t, 65536);
  const b = Buffer.alloc(16);
  const calls: [string, (o: unknown) => Promise<unknown>][] = [
    ['read', (o) => usrbio.read(f.fd, 0, 10, o as never)],
    ['readInto', (o) => usrbio.readInto(f.fd, b, 0, 10, o as never)],
    ['write', (o) => usrbio.write(f.fd, 0, b, o as never)],
    ['writeFrom', (o) => usrbio.writeFrom(f.fd, b, 0, 10, o as never)],
    ['batch', (o) => usrbio.batch([{ fd: f.fd, offset: 0, length: 10 }], o as never)],
    ['stream', async (o) => {
      for await (const c of usrbio.stream([{ fd: f.fd, offset: 0, length: 10 }], o as never)) void c;
    }],
  ];
  for (const [name, call] of calls) {
    await t.rejects(call({ signal: 42 }), { name: 'TypeError', message: 'options.signal must be an AbortSignal, got 42' }, `${name} signal`);
    await t.rejects(call({ signal: Symbol('s') }), { name: 'TypeError', message: 'options.signal must be an AbortSignal, got symbol' }, name);
    await t.rejects(call({ signal: Object.create(null) }), { name: 'TypeError', message: 'options.signal must be an AbortSignal, got object' }, name);
    await t.rejects(call({ signal: new Map() }), { name: 'TypeError', message: 'options.signal must be an AbortSignal, got a Map' }, name);
    await t.rejects(call({ signal: {} }), { name: 'TypeError', message: 'options.signal must be an AbortSignal, got an object' }, name);
    await t.rejects(call({ signal: new AbortController() }),
      { name: 'TypeError', message: 'options.signal must be an AbortSignal, got an AbortController' }, name);
    await t.rejects(call({ timeoutMs: 0 }), { name: 'RangeError', message: 'options.timeoutMs must be between 1 and 2147483647, got 0' }, name);
    await t.rejects(call({ timeoutMs: 2 ** 31 }), { name: 'RangeError', message: /^options.timeoutMs must be between/ }, name);
    await t.rejects(call({ timeoutMs: 1.5 }), { name: 'TypeError', message: 'options.timeoutMs must be an integer, got 1.5' }, name);
    await t.rejects(call({ timeoutMs: '100' }), { name: 'TypeError', message: 'options.timeoutMs must be an integer, got "100"' }, name);
    await t.rejects(call({ sigal: AbortSignal.abort() }), { name: 'TypeError', message: 'unknown option "sigal"' }, name);
    await t.rejects(call(5), { name: 'TypeError', message: 'options must be an object, got 5' }, name);
    await t.rejects(call(null), { name: 'TypeError', message: 'options must be an object, got null' }, name);
    await t.rejects(call([]), { name: 'TypeError', message: 'options must be an object, got an Array' }, name);
  }
  t.equal(usrbio.stats()!.submitted, 0, 'nothing was submitted');
  await usrbio.close();
});

t.test('stream options and arguments', async (t) => {
  const f = dataFile(t, 65536);
  const e = createEngine({ iovBytes: 1 << 20 });
  t.teardown(() => e.close());
  const src = [{ fd: f.fd, offset: 0, length: 1 }];
  t.throws(() => e.stream(src, { ordered: 1 } as never), { name: 'TypeError', message: 'options.ordered must be a boolean, got 1' });
  t.throws(() => e.stream(src, { window: '8' } as never), { name: 'TypeError', message: 'options.window must be an integer, got "8"' });
  t.throws(() => e.stream(src, { window: 0 }), { name: 'RangeError', message: /^options.window must be between 1 and/ });
  t.throws(() => e.stream(src, { windw: 8 } as never), { name: 'TypeError', message: 'unknown option "windw"' });
  t.throws(() => e.stream(42 as never), { name: 'TypeError', message: 'source must be an iterable or async iterable of requests, got 42' });
  const bad = async (req: unknown, message: string | RegExp, name = 'TypeError') => {
    await t.rejects((async () => {
      for await (const c of e.stream([req as never])) void c;
    })(), { name, message });
  };
  await bad(7, 'each request must be an object, got 7');
  await bad({ op: 'rd', fd: f.fd, offset: 0, length: 1 }, 'request.op must be "read" or "write", got "rd"');
  await bad({ fd: -1, offset: 0, length: 1 }, 'request.fd must be a non-negative integer, got -1');
  await bad({ fd: f.fd, offset: 'x', length: 1 }, 'request.offset must be an integer, got "x"');
  await bad({ fd: f.fd, offset: 0, length: 2 ** 31 }, 'request.length must be between 0 and 2147483647, got 2147483648', 'RangeError');
  await bad({ op: 'write', fd: f.fd, offset: 0, data: 'abc' }, 'request.data must be a Buffer, TypedArray or DataView, got "abc"');
  await t.rejects(e.batch('x' as never), { name: 'TypeError', message: 'requests must be an array, got "x"' });
  await t.rejects(usrbio.batch({} as never), { name: 'TypeError', message: 'requests must be an array, got an object' });
  await t.rejects(e.close({ cancel: 'yes' } as never), { name: 'TypeError', message: 'options.cancel must be a boolean, got "yes"' });
  await t.rejects(e.close({ force: true } as never), { name: 'TypeError', message: 'unknown option "force"' });
});

t.test('engine options of the memory model', async (t) => {
  const M = 1 << 20;
  t.throws(() => createEngine({ iovBytes: M, viewBytes: 2 * M }), { name: 'RangeError', message: `options.viewBytes must be between 0 and ${M}, got ${2 * M}` });
  t.throws(() => createEngine({ viewBytes: 100 }), { name: 'RangeError', message: 'options.viewBytes must be a multiple of 4096, got 100' });
  t.throws(() => createEngine({ viewBytes: -4096 }), { name: 'RangeError' });
  t.throws(() => createEngine({ copyMaxBytes: -1 }), { name: 'RangeError', message: /^options.copyMaxBytes must be between 0 and/ });
  t.throws(() => createEngine({ copyMaxBytes: 'big' } as never), { name: 'TypeError', message: 'options.copyMaxBytes must be an integer, got "big"' });
  t.throws(() => createEngine({ iovBytes: M, pieceBytes: 2 * M }), { name: 'RangeError', message: /^options.pieceBytes must be between 4096 and 262144/ });
  t.throws(() => createEngine({ pieceBytes: 5000 }), { name: 'RangeError', message: 'options.pieceBytes must be a multiple of 4096, got 5000' });
  t.throws(() => createEngine({ spaceWaitMs: 0 }), { name: 'RangeError', message: /^options.spaceWaitMs must be between 1 and/ });
  t.throws(() => usrbio.configure({ spaceWaitMs: 'x' } as never), { name: 'TypeError', message: 'options.spaceWaitMs must be an integer, got "x"' },
    'configure() validates at once');
  const e = createEngine({ iovBytes: M, viewBytes: 0 });
  t.teardown(() => e.close());
  t.equal(e.options.pieceBytes, 256 * 1024, 'a quarter of the staging region');
  const e2 = createEngine({ iovBytes: M, viewBytes: M });
  t.teardown(() => e2.close());
  t.equal(e2.options.pieceBytes, 256 * 1024, 'no staging region: a quarter of the view region');
  const f = dataFile(t, 2 * M);
  const v = await e.read(f.fd, 0, 2 * M);
  t.equal(v.zeroCopy, false, 'viewBytes 0: every result is a copy');
  t.equal(Buffer.compare(v, f.data), 0);
  t.equal(e.alloc(4096).zeroCopy, false, 'and alloc() gives ordinary memory');
});
