/**
 * The OpenAI-compatible server through the official `openai` npm client, on 127.0.0.1 with fixture
 * models made by our builder: chat and completions, streaming or not, stop strings, greedy output
 * equal to the library's token for token (every method), a 4-way concurrent load, the bounded queue
 * (429 + Retry-After), client disconnect cancelling the generation, OpenAI-style 400s, /metrics
 * with vLLM's counter names consistent with the responses, and the security checks (token off
 * loopback, Host header).
 */
import OpenAI from "openai";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { InvalidOptionError } from "../../src/errors.js";
import { scrapeSpecMetrics } from "../../src/openai/metrics.js";
import { startOpenAIServer, type RunningOpenAIServer } from "../../src/openai/server.js";
import { fixture } from "../helpers/fixtures.js";

const TARGET_OPTS = { layers: 2, hidden: 32, heads: 2, kvHeads: 1, seed: 7, earlyExit: [1], maxPositions: 4096 };
const DRAFT_OPTS = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed: 7, maxPositions: 4096 };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

describe("OpenAI-compatible server (openai npm client)", () => {
  let model: string;
  let draft: string;
  let server: RunningOpenAIServer;
  let client: OpenAI;
  let base: string;
  const library = new SpecEngine({ threads: 1 });

  beforeAll(async () => {
    model = await fixture(TARGET_OPTS);
    draft = await fixture(DRAFT_OPTS);
    server = await startOpenAIServer({ model, draft, method: "draft", servedModelName: "tiny", port: 0, storeOptions: { threads: 1 } });
    base = `http://127.0.0.1:${server.port}`;
    client = new OpenAI({ baseURL: server.url, apiKey: "unused-on-loopback", maxRetries: 0 });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await library.dispose();
  });

  it("lists the served model", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["tiny"]);
    expect((await client.models.retrieve("tiny")).id).toBe("tiny");
  });

  it("greedy output over HTTP equals the library's plain decoding, token for token, for every method", async () => {
    const prompt = "Once upon a time";
    const ref = await library.generate({ model, prompt, method: "baseline", maxNewTokens: 40 });
    expect(ref.tokens.length).toBeGreaterThan(0);
    for (const method of ["baseline", "draft", "early-exit", "prompt-lookup", "lookahead"]) {
      const r: Loose = await client.completions.create({
        model: "tiny",
        prompt,
        max_tokens: 40,
        temperature: 0,
        return_token_ids: true,
        speculation: { method, ...(method === "draft" ? { k: 3 } : {}) },
      } as Loose);
      expect(r.choices[0].token_ids, method).toEqual(ref.tokens);
      expect(r.choices[0].text, method).toBe(ref.text);
      expect(r.speculation.method).toBe(method);
      expect(r.usage.completion_tokens).toBe(ref.tokens.length);
      expect(r.usage.prompt_tokens).toBe(ref.promptTokens);
      if (method === "draft") expect(r.speculation.draft_tokens).toBeGreaterThan(0);
    }
    // Token-id prompts are fed as given.
    const ids: Loose = await client.completions.create({ model: "tiny", prompt: [1, 17, 93, 200], max_tokens: 12, temperature: 0, return_token_ids: true } as Loose);
    const refIds = await library.generate({ model, promptIds: [1, 17, 93, 200], maxNewTokens: 12 });
    expect(ids.choices[0].token_ids).toEqual(refIds.tokens);
  });

  it("chat: non-streaming and streaming give the same text; usage and speculation are reported", async () => {
    const messages = [{ role: "system" as const, content: "Be brief." }, { role: "user" as const, content: "Tell me a story." }];
    const ref = await library.generate({ model, messages, method: "baseline", maxNewTokens: 30 });
    const full: Loose = await client.chat.completions.create({ model: "tiny", messages, max_completion_tokens: 30, temperature: 0 });
    expect(full.object).toBe("chat.completion");
    expect(full.choices[0].message.role).toBe("assistant");
    expect(full.choices[0].message.content).toBe(ref.text);
    expect(full.choices[0].finish_reason).toBe(ref.finishReason === "length" ? "length" : "stop");
    expect(full.usage).toEqual({ prompt_tokens: ref.promptTokens, completion_tokens: ref.tokens.length, total_tokens: ref.promptTokens + ref.tokens.length });
    expect(full.speculation.method).toBe("draft");
    expect(full.speculation.target_forwards).toBeGreaterThan(0);

    const stream = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let usage: Loose;
    let finish: string | null = null;
    let first = true;
    for await (const c of stream as AsyncIterable<Loose>) {
      if (first) expect(c.choices[0].delta.role).toBe("assistant");
      first = false;
      if (c.choices.length > 0) {
        text += c.choices[0].delta.content ?? "";
        finish = c.choices[0].finish_reason ?? finish;
      }
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe(ref.text);
    expect(finish).toBe(full.choices[0].finish_reason);
    expect(usage).toEqual(full.usage);
  });

  it("completions stream, and stop strings end the text before the stop string", async () => {
    const prompt = "The quick brown fox";
    const whole: Loose = await client.completions.create({ model: "tiny", prompt, max_tokens: 40, temperature: 0 });
    const text: string = whole.choices[0].text;
    expect(text.length).toBeGreaterThan(8);
    const stop = text.slice(5, 8);
    const cut = text.slice(0, text.indexOf(stop));
    const stopped: Loose = await client.completions.create({ model: "tiny", prompt, max_tokens: 40, temperature: 0, stop: [stop, "never-appears-here"] });
    expect(stopped.choices[0].text).toBe(cut);
    expect(stopped.choices[0].finish_reason).toBe("stop");
    const stream = await client.completions.create({ model: "tiny", prompt, max_tokens: 40, temperature: 0, stop, stream: true });
    let streamed = "";
    for await (const c of stream) streamed += c.choices[0]?.text ?? "";
    expect(streamed).toBe(cut);
  });

  it("serves a 4-way concurrent load in order, without losing, refusing or mixing requests", async () => {
    const prompts = ["alpha beta", "gamma delta", "epsilon", "zeta eta theta"];
    const refs = await Promise.all(prompts.map((p) => library.generate({ model, prompt: p, maxNewTokens: 20 })));
    const got = await Promise.all(
      prompts.map((p, i) =>
        i % 2 === 0
          ? client.completions.create({ model: "tiny", prompt: p, max_tokens: 20, temperature: 0 }).then((r) => r.choices[0]!.text)
          : client.completions.create({ model: "tiny", prompt: p, max_tokens: 20, temperature: 0, stream: true }).then(async (s) => {
              let t = "";
              for await (const c of s) t += c.choices[0]?.text ?? "";
              return t;
            }),
      ),
    );
    expect(got).toEqual(refs.map((r) => r.text));
  });

  it("refuses with 429 and Retry-After when the queue is full, and a disconnect cancels the running generation", async () => {
    // A second server on the same engine with room for one waiting request.
    const small = await startOpenAIServer({ model, draft, servedModelName: "tiny", port: 0, maxQueue: 1, engine: library });
    const sbase = `http://127.0.0.1:${small.port}`;
    const sclient = new OpenAI({ baseURL: small.url, apiKey: "x", maxRetries: 0 });
    try {
      const metricsBefore = await raw(`${sbase}/metrics`, {});
      const abortsBefore = /vllm:request_success_total\{[^}]*finished_reason="abort"[^}]*\} (\d+)/.exec(metricsBefore.body)?.[1] ?? "0";
      const ac = new AbortController();
      const long = await sclient.completions.create(
        { model: "tiny", prompt: "a long story", max_tokens: 3500, temperature: 0, stream: true, speculation: { method: "baseline" } } as Loose,
        { signal: ac.signal },
      );
      const it1 = (long as unknown as AsyncIterable<Loose>)[Symbol.asyncIterator]();
      await it1.next(); // generating now
      // One more waits in the queue (limit 1) ...
      const queued = sclient.completions.create({ model: "tiny", prompt: "next", max_tokens: 5, temperature: 0 });
      // Wait until the server has it queued (no fixed sleep: the machine may be busy).
      for (let i = 0; i < 500; i++) {
        if (/^vllm:num_requests_waiting\{[^}]*\} 1$/m.test((await raw(`${sbase}/metrics`, {})).body)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      // ... and a third is refused.
      const third = await raw(`${sbase}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", prompt: "third", max_tokens: 5 }),
      });
      expect(third.status).toBe(429);
      expect(Number(third.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(third.body).error).toMatchObject({ type: "rate_limit_error", code: "queue_full" });
      // The client goes away: the long generation stops, and the queued request is served.
      ac.abort();
      const t0 = Date.now();
      const next = await queued;
      expect(next.choices[0]!.text.length).toBeGreaterThan(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const m = await raw(`${sbase}/metrics`, {});
      const aborts = /vllm:request_success_total\{[^}]*finished_reason="abort"[^}]*\} (\d+)/.exec(m.body)?.[1];
      expect(Number(aborts)).toBe(Number(abortsBefore) + 1);
      // It stopped early: far fewer than the 3500 tokens asked for were generated (+5 for the queued one).
      const generated = (page: string) => scrapeSpecMetrics(page).generationTokens!;
      expect(generated(m.body) - generated(metricsBefore.body)).toBeLessThan(3500);
      expect(m.body).toMatch(/spec_decode_requests_rejected_total\{[^}]*reason="queue_full"[^}]*\} [1-9]/);
    } finally {
      await small.close();
    }
  });

  it("bad requests get OpenAI-style errors naming the field; the server keeps serving", async () => {
    const bad = async (body: Loose, path = "chat/completions") => {
      try {
        await client.post(`/${path}`, { body });
      } catch (err) {
        return err as Loose;
      }
      throw new Error("expected an error");
    };
    const messages = [{ role: "user", content: "hi" }];
    let e = await bad({ model: "tiny", messages, max_token: 5 });
    expect(e.status).toBe(400);
    expect(e.error.message).toMatch(/Unrecognized request argument supplied: max_token\. Did you mean "max_tokens"\?/);
    expect(e.param).toBe("max_token");
    expect(e.code).toBe("unknown_parameter");
    e = await bad({ model: "tiny", messages, speculation: { methd: "draft" } });
    expect(e.status).toBe(400);
    expect(e.error.message).toMatch(/in speculation: methd\. Did you mean "method"\?/);
    e = await bad({ model: "tiny", messages, n: 2 });
    expect(e.status).toBe(400);
    expect(e.error.message).toMatch(/n must be 1/);
    expect(e.param).toBe("n");
    e = await bad({ model: "tiny" });
    expect(e.status).toBe(400);
    expect(e.code).toBe("missing_required_parameter");
    expect(e.param).toBe("messages");
    e = await bad({ model: "other", messages });
    expect(e.status).toBe(404);
    expect(e.code).toBe("model_not_found");
    e = await bad({ model: "tiny", messages: [{ role: "tool", content: "x" }] });
    expect(e.status).toBe(400);
    expect(e.param).toBe("messages[0].role");
    e = await bad({ model: "tiny", messages, temperature: 5 });
    expect(e.param).toBe("temperature");
    e = await bad({ model: "tiny", messages, max_tokens: 100_000 });
    expect(e.error.message).toMatch(/above this server's limit of 4096/);
    e = await bad({ model: "tiny", prompt: "x", max_tokens: 4096 }, "completions");
    expect(e.code).toBe("context_length_exceeded");
    e = await bad({ model: "tiny", prompt: ["a", "b"] }, "completions");
    expect(e.param).toBe("prompt");
    e = await bad({ model: "tiny", messages, speculation: { method: "medusa" } });
    expect(e.error.message).toMatch(/--heads/);
    const notJson = await raw(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{oops" });
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).error.type).toBe("invalid_request_error");
    const huge = await raw(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(2 * 1024 * 1024) }).catch(() => ({ status: 413 }));
    expect(huge.status).toBe(413);
    expect((await raw(`${base}/v1/nothing`, {})).status).toBe(404);
    expect((await raw(`${base}/v1/chat/completions`, {})).status).toBe(405);
    const ok = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 3 });
    expect(ok.choices[0]!.message.content).toBeTypeOf("string");
  });

  it("/metrics uses vLLM's spec-decode names; the counters add up to the responses' statistics", async () => {
    const before = scrapeSpecMetrics((await raw(`${base}/metrics`, {})).body);
    let drafted = 0;
    let accepted = 0;
    let drafts = 0;
    for (const prompt of ["one two three", "four five six"]) {
      const r: Loose = await client.completions.create({ model: "tiny", prompt, max_tokens: 30, temperature: 0, speculation: { method: "early-exit", k: 4 } } as Loose);
      drafted += r.speculation.draft_tokens;
      accepted += r.speculation.accepted_tokens;
      drafts += r.speculation.drafts;
    }
    const page = (await raw(`${base}/metrics`, {})).body;
    expect(page).toMatch(/^# TYPE vllm:spec_decode_num_drafts counter$/m);
    expect(page).toMatch(/^vllm:spec_decode_num_drafts_total\{model_name="tiny",engine="0"\} \d+$/m);
    const after = scrapeSpecMetrics(page);
    expect(after.source).toBe("vllm");
    expect(after.drafts! - before.drafts!).toBe(drafts);
    expect(after.draftTokens! - before.draftTokens!).toBe(drafted);
    expect(after.acceptedTokens! - before.acceptedTokens!).toBe(accepted);
    expect(drafts).toBeGreaterThan(0);
    // Accepted through position j, summed over j, is the number of accepted tokens (as in vLLM).
    expect(after.acceptedPerPos!.reduce((a, b) => a + b, 0)).toBe(after.acceptedTokens);
  });

  it("needs a bearer token off loopback and checks the Host header", async () => {
    await expect(startOpenAIServer({ model, host: "0.0.0.0", port: 0, token: "" })).rejects.toBeInstanceOf(InvalidOptionError);
    const open = await startOpenAIServer({ model, host: "0.0.0.0", port: 0, token: "s3cret", servedModelName: "tiny", engine: library });
    try {
      const url = `http://127.0.0.1:${open.port}`;
      const noAuth = await raw(`${url}/v1/models`, {});
      expect(noAuth.status).toBe(401);
      expect(JSON.parse(noAuth.body).error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
      const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: "wrong", maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toMatchObject({ status: 401 });
      const right = new OpenAI({ baseURL: `${url}/v1`, apiKey: "s3cret", maxRetries: 0 });
      expect((await right.models.list()).data[0]!.id).toBe("tiny");
    } finally {
      await open.close();
    }
    const rebinding = await raw(`${base}/v1/models`, { headers: { host: "attacker.example" } });
    expect(rebinding.status).toBe(403);
    const foreign = await raw(`${base}/v1/models`, { headers: { origin: "http://evil.example" } });
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body).error.message).toMatch(/--allow-origin/);
  });
});
