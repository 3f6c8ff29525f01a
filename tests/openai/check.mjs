// check.mjs — drives hearthd's HTTP API with the official `openai` client.
//
// Run by tests/test_http.c with HEARTH_BASE_URL (http://127.0.0.1:PORT/v1)
// and HEARTH_API_KEY set; prints one JSON object with what the client saw,
// which the C test checks. Exits non-zero (message on stderr) when a call
// fails in a way the client did not expect.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.HEARTH_BASE_URL,
  apiKey: process.env.HEARTH_API_KEY || "none",
  maxRetries: 0,
  timeout: 120000,
});

const sampling = { temperature: 0, max_tokens: 24 };
const messages = [
  { role: "system", content: "You tell short stories." },
  { role: "user", content: "Tell me about a cat." },
];

async function main() {
  const out = {};

  const models = await client.models.list();
  out.models = models.data.map((m) => ({ id: m.id, object: m.object, owned_by: m.owned_by }));

  const chat = await client.chat.completions.create({ model: out.models[0].id, messages, ...sampling });
  out.chat = {
    id: chat.id,
    object: chat.object,
    role: chat.choices[0].message.role,
    content: chat.choices[0].message.content,
    finish_reason: chat.choices[0].finish_reason,
    usage: chat.usage,
  };

  const stream = await client.chat.completions.create({
    model: out.models[0].id,
    messages,
    ...sampling,
    stream: true,
    stream_options: { include_usage: true },
  });
  let content = "";
  let finish = null;
  let chunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta?.content) content += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  out.chat_stream = { content, finish_reason: finish, chunks, usage };

  const cmpl = await client.completions.create({
    model: out.models[0].id,
    prompt: "Once upon a time",
    ...sampling,
  });
  out.completion = {
    object: cmpl.object,
    text: cmpl.choices[0].text,
    finish_reason: cmpl.choices[0].finish_reason,
    usage: cmpl.usage,
  };

  const cstream = await client.completions.create({
    model: out.models[0].id,
    prompt: "Once upon a time",
    ...sampling,
    stream: true,
  });
  let text = "";
  for await (const chunk of cstream) for (const c of chunk.choices) text += c.text ?? "";
  out.completion_stream = { text };

  // A refused request surfaces as the client's APIError with OpenAI's fields.
  try {
    await client.chat.completions.create({ model: out.models[0].id, messages, n: 2 });
    out.bad_request = { status: 0 };
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    out.bad_request = { status: e.status, type: e.type, param: e.param };
  }

  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(`check.mjs: ${e?.stack || e}\n`);
  process.exit(1);
});
