// Stand-in for the wasm-bindgen output when web/src/wasm/pkg was not generated (see vite.config.ts).
const reason = 'The WebAssembly pipeline was not built into this page (web/src/wasm/pkg is missing).';
export default async function init() {
  throw new Error(reason);
}
export class WasmPipeline {}
export function run_task_frame() {
  throw new Error(reason);
}
