// An engine edge the service work made visible: a stream aborted while its request waits for
// admission, then the engine closed with { cancel: true } in the same turn (before the waiting
// list is flushed). The aborted waiter is still listed when close cancels what waits, and must be
// skipped, not cancelled twice. (Other tests reached this only by timing.)
import t from 'tap';
import { createEngine } from '../src/index';
import { dataFile } from './fixtures/engine';

t.test('abort a waiting stream request, then close({ cancel: true }) in the same turn', async (t) => {
  const f = dataFile(t, 1 << 20);
  const e = createEngine({ iovBytes: 16384, viewBytes: 16384, copyMaxBytes: 0 }); // every result a view
  const held = await Promise.all([0, 1, 2, 3].map((i) => e.read(f.fd, i * 4096, 4096))); // the iov is full
  const ac = new AbortController();
  const st = e.stream([{ fd: f.fd, offset: 0, length: 1, tag: 0 }], { signal: ac.signal });
  const first = st.next();
  t.equal(e.stats().queued, 1, 'the request waits for iov space');
  ac.abort();
  const closing = e.close({ cancel: true });
  await t.rejects(first, { name: 'AbortError' });
  const s = e.stats();
  t.equal(s.queued, 0, 'nothing waits');
  t.equal(s.cancelled, 1, 'cancelled once, by the abort');
  held.forEach((v) => v.release());
  await closing;
  t.equal(e.closed, true);
});
