// Greedy decoding of an optimum-style ONNX decoder with onnxruntime-node: the independent
// reference the onnx plugin's tests compare the engine's greedy ids against. It shares no code
// with lemctl: its own KV-cache loop, its own argmax (lowest index among equal logits), the
// model's own config.json.
//
// usage: node greedy.js <node_modules dir> <model dir> <new tokens> '<prompts: [[id, ...], ...]>'
// prints the greedy ids per prompt as JSON; each prompt is decoded alone (batch 1), with one
// intra-op thread.
'use strict';
const path = require('path');
const fs = require('fs');

async function main() {
  const [modules, dir, stepsArg, promptsArg] = process.argv.slice(2);
  const ort = require(path.join(modules, 'onnxruntime-node'));
  const steps = Number(stepsArg);
  const prompts = JSON.parse(promptsArg);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const layers = cfg.n_layer ?? cfg.num_hidden_layers;
  const heads = cfg.n_head ?? cfg.num_attention_heads;
  const hidden = cfg.n_embd ?? cfg.hidden_size;
  const kvHeads = cfg.num_key_value_heads ?? heads;
  const headDim = cfg.head_dim ?? hidden / heads;
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const hasPositions = session.inputNames.includes('position_ids');
  const out = [];
  for (const prompt of prompts) {
    const past = {};
    for (let i = 0; i < layers; i++) {
      for (const kv of ['key', 'value']) {
        past[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
      }
    }
    let ids = prompt.map(BigInt);
    let seen = 0;
    const generated = [];
    for (let k = 0; k < steps; k++) {
      const n = ids.length;
      const feeds = {
        ...past,
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(seen + n).fill(1n), [1, seen + n]),
      };
      if (hasPositions) {
        feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, j) => BigInt(seen + j)), [1, n]);
      }
      const r = await session.run(feeds);
      const vocab = r.logits.dims[2];
      const logits = r.logits.data;
      const off = (n - 1) * vocab;
      let best = 0;
      for (let v = 1; v < vocab; v++) {
        if (logits[off + v] > logits[off + best]) best = v;
      }
      generated.push(best);
      for (let i = 0; i < layers; i++) {
        past[`past_key_values.${i}.key`] = r[`present.${i}.key`];
        past[`past_key_values.${i}.value`] = r[`present.${i}.value`];
      }
      seen += n;
      ids = [BigInt(best)];
    }
    out.push(generated);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
