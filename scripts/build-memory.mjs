#!/usr/bin/env node
// Peak memory of the ONNX builder on a checkpoint shaped like a real one (weights are zeros, written
// as a sparse bf16 safetensors file, so only the shapes matter; the builder reads every byte).
// Prints one JSON object: parameters, checkpoint and ONNX bytes, build seconds, peak RSS of the
// build process (a separate `spec-decode build` process, so nothing of this script is counted).
//
//   node scripts/build-memory.mjs [--preset qwen2.5-0.5b|qwen2.5-1.5b] [--dir DIR] [--keep]
import { spawn } from "node:child_process";
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const PRESETS = {
  "qwen2.5-0.5b": { hidden: 896, intermediate: 4864, layers: 24, heads: 14, kvHeads: 2, vocab: 151936 },
  "qwen2.5-1.5b": { hidden: 1536, intermediate: 8960, layers: 28, heads: 12, kvHeads: 2, vocab: 151936 },
};

const { values: v } = parseArgs({ options: { preset: { type: "string", default: "qwen2.5-1.5b" }, dir: { type: "string" }, keep: { type: "boolean", default: false } } });
const p = PRESETS[v.preset];
if (!p) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(", ")}`);
const dir = v.dir ?? join(tmpdir(), `build-memory-${v.preset}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const D = p.hidden / p.heads;
const config = {
  architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: p.hidden, intermediate_size: p.intermediate,
  num_hidden_layers: p.layers, num_attention_heads: p.heads, num_key_value_heads: p.kvHeads, vocab_size: p.vocab,
  max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0, tie_word_embeddings: true, hidden_act: "silu",
  torch_dtype: "bfloat16", bos_token_id: 151643, eos_token_id: 151645, use_sliding_window: false,
};
writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));

const tensors = [["model.embed_tokens.weight", [p.vocab, p.hidden]], ["model.norm.weight", [p.hidden]]];
for (let i = 0; i < p.layers; i++) {
  const l = `model.layers.${i}`;
  tensors.push(
    [`${l}.input_layernorm.weight`, [p.hidden]], [`${l}.post_attention_layernorm.weight`, [p.hidden]],
    [`${l}.self_attn.q_proj.weight`, [p.heads * D, p.hidden]], [`${l}.self_attn.q_proj.bias`, [p.heads * D]],
    [`${l}.self_attn.k_proj.weight`, [p.kvHeads * D, p.hidden]], [`${l}.self_attn.k_proj.bias`, [p.kvHeads * D]],
    [`${l}.self_attn.v_proj.weight`, [p.kvHeads * D, p.hidden]], [`${l}.self_attn.v_proj.bias`, [p.kvHeads * D]],
    [`${l}.self_attn.o_proj.weight`, [p.hidden, p.heads * D]],
    [`${l}.mlp.gate_proj.weight`, [p.intermediate, p.hidden]], [`${l}.mlp.up_proj.weight`, [p.intermediate, p.hidden]],
    [`${l}.mlp.down_proj.weight`, [p.hidden, p.intermediate]],
  );
}
const header = { __metadata__: { format: "pt" } };
let offset = 0;
let params = 0;
for (const [name, shape] of tensors) {
  const n = shape.reduce((a, b) => a * b, 1);
  params += n;
  header[name] = { dtype: "BF16", shape, data_offsets: [offset, offset + 2 * n] };
  offset += 2 * n;
}
let json = Buffer.from(JSON.stringify(header));
json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
const file = join(dir, "model.safetensors");
const fd = openSync(file, "w");
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(json.length));
writeSync(fd, len);
writeSync(fd, json);
ftruncateSync(fd, 8 + json.length + offset); // sparse: zeros without writing them
closeSync(fd);

const code = `import("./dist/builder/index.js").then(async ({ buildModelDir }) => {
  const t0 = performance.now();
  await buildModelDir(${JSON.stringify(dir)}, { treeMask: true, hiddenStates: true });
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));
})`;
const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
let out = "";
child.stdout.on("data", (d) => (out += d));
const exit = await new Promise((r) => child.on("exit", r));
if (exit !== 0) throw new Error(`build exited with ${exit}`);
const r = JSON.parse(out);
const onnxDir = join(dir, "onnx");
const onnxBytes = readdirSync(onnxDir).reduce((a, f) => a + statSync(join(onnxDir, f)).size, 0);
console.log(JSON.stringify({ preset: v.preset, params, checkpointBytes: statSync(file).size, onnxBytes, float32Bytes: params * 4, ...r, node: process.version }, null, 2));
if (!v.keep) rmSync(dir, { recursive: true, force: true });
