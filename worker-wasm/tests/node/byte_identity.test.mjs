// Byte identity between the native pipeline and its WebAssembly build: the same task frame must give
// the same result frame (and so the same SHA-256) in a browser as on the server's audit path.
//
// Run:
//   VITALGRID_FRAMES_DIR=/tmp/frames cargo test -p vitalgrid-worker frames_for_the_wasm
//   cargo build -p vitalgrid-worker --target wasm32-unknown-unknown --release
//   wasm-bindgen --target web --out-dir /tmp/pkg $CARGO_TARGET_DIR/wasm32-unknown-unknown/release/vitalgrid_worker.wasm
//   VITALGRID_FRAMES_DIR=/tmp/frames VITALGRID_WASM_PKG=/tmp/pkg node --test worker-wasm/tests/node/
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const framesDir = process.env.VITALGRID_FRAMES_DIR;
const pkgDir = process.env.VITALGRID_WASM_PKG;
const skip = !framesDir || !pkgDir ? "set VITALGRID_FRAMES_DIR and VITALGRID_WASM_PKG" : false;

async function load() {
  const glue = await import(pathToFileURL(path.join(pkgDir, "vitalgrid_worker.js")).href);
  glue.initSync({ module: fs.readFileSync(path.join(pkgDir, "vitalgrid_worker_bg.wasm")) });
  const read = (name) => fs.readFileSync(path.join(framesDir, name), "utf8");
  // A result frame is its header line and payload as UTF-8 bytes (docs/protocol.md).
  const expected = new Uint8Array(fs.readFileSync(path.join(framesDir, "result.frame")));
  return { glue, template: read("template.json"), task: read("task.frame"), expected };
}

/** A small frame (ACK, ERROR) the wasm returned as UTF-8 bytes, parsed. */
function json(frame) {
  assert.ok(frame instanceof Uint8Array, "frames leave the wasm as bytes");
  return JSON.parse(new TextDecoder().decode(frame));
}

test("run_task_frame in wasm gives the native result frame byte for byte", { skip }, async () => {
  const { glue, template, task, expected } = await load();
  assert.deepEqual(glue.run_task_frame(template, task), expected);
});

test("the wasm pipeline stepped in small slices gives the native result frame", { skip }, async () => {
  const { glue, template, task, expected } = await load();
  const pipeline = new glue.WasmPipeline();
  assert.deepEqual(pipeline.receive(template), []);
  const replies = pipeline.receive(task);
  assert.equal(replies.length, 1);
  assert.equal(json(replies[0]).type, "ack");
  const frames = [];
  for (let guard = 0; !pipeline.is_idle() && guard < 100_000; guard++) {
    const step = pipeline.step(777);
    assert.ok(step.rows <= 777);
    assert.ok(step.progress >= 0 && step.progress <= 1);
    frames.push(...step.frames);
  }
  assert.deepEqual(frames, [expected]);
  pipeline.free();
});

test("a corrupt task frame is refused with an integrity error", { skip }, async () => {
  const { glue, template, task } = await load();
  const pipeline = new glue.WasmPipeline();
  pipeline.receive(template);
  // A task frame is its header line and payload: flip a bit of the announced checksum.
  const newline = task.indexOf("\n");
  const header = JSON.parse(task.slice(0, newline));
  header.adler32 ^= 1;
  const [reply] = pipeline.receive(JSON.stringify(header) + task.slice(newline));
  assert.equal(json(reply).code, "integrity");
  assert.equal(pipeline.is_idle(), true);
});
