// The data loader (see docs/loader.md).
export { openDataset, Dataset } from './dataset';
export type { DatasetFormat, DatasetOptions, Range } from './dataset';
export { createLoader, Loader, Batch, LoaderError } from './loader';
export type { LoaderMetrics, LoaderOptions, LoaderState, PrefetchOptions, SkipRecord } from './loader';
export { IndexedWriter, readIndex } from './ffrecord';
export { pack } from './pack';
export type { PackOptions, PackResult } from './pack';
