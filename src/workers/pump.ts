// Piscina worker entry: each task serves one engine channel (logic in src/engine/pump-loop.ts).
import { pumpTask } from '../engine/pump-loop';

export default pumpTask;
