-- agent.lua — hearth's agent loop (docs/agent.md).
--
-- The daemon runs M.run(args) for `agent.run` / `hearth agent "task"`; a
-- user's own file (agent.script in the config, or agent.lua next to the
-- config) replaces this one and must return a module with the same run().
-- Scripts reach it as hearth.agent.
--
-- One step: the model answers (streamed; content released as it becomes
-- safe to show), the answer's tool calls are parsed in the model family's
-- format, each call is checked (a known tool, arguments that are a JSON
-- object valid for its schema), run through hearthd's policy gate (which
-- may ask the user), and its result goes back to the model as a `tool`
-- message. The loop ends at an answer without tool calls, after max_steps
-- model turns, or at the time budget. Calls that are malformed, unknown,
-- invalid or refused get an error result the model sees, so it can try
-- again.
--
-- Sampling is constrained by a grammar that allows either plain text or a
-- tool call in the family's format whose JSON is valid for one of the
-- offered tools (tool_choice "auto"), only a call ("required"), or nothing
-- ("none").

local hearth = hearth
local json = hearth.json

local M = {}

-- ---- formats ---------------------------------------------------------------------

-- Per model family: how a call looks, what the model is told, how the
-- grammar wraps the call JSON. `call` is the grammar rule of one call
-- object (see M.grammar); `text` the rule of a plain answer.
M.formats = {
  hermes = {
    name_key = "arguments",
    opener = "<tool_call>",
    instructions = 'To call a tool, answer with\n<tool_call>\n{"name": "TOOL_NAME", ' ..
        '"arguments": {ARGUMENTS}}\n</tool_call>\nand nothing else. When you have the ' ..
        'answer, reply with plain text and no tool call.',
    example = '<tool_call>\n{"name": "TOOL_NAME", "arguments": {...}}\n</tool_call>',
    call_rule = 'tc-call ::= "<tool_call>\\n" call "\\n</tool_call>"',
    text_rule = 'tc-text ::= ([^<] [^\\x00]*)?',
  },
  llama3 = {
    name_key = "parameters",
    opener = "{",
    instructions = 'To call a tool, answer with only a JSON object {"name": "TOOL_NAME", ' ..
        '"parameters": {ARGUMENTS}} and nothing else. When you have the answer, reply ' ..
        'with plain text and no JSON.',
    example = '{"name": "TOOL_NAME", "parameters": {...}}',
    call_rule = 'tc-call ::= call',
    text_rule = 'tc-text ::= ([^{] [^\\x00]*)?',
  },
  mistral = {
    name_key = "arguments",
    opener = "[TOOL_CALLS]",
    instructions = 'To call tools, answer with [TOOL_CALLS] followed by a JSON array of ' ..
        'calls: [TOOL_CALLS][{"name": "TOOL_NAME", "arguments": {ARGUMENTS}}]. When you ' ..
        'have the answer, reply with plain text.',
    example = '[TOOL_CALLS][{"name": "TOOL_NAME", "arguments": {...}}]',
    call_rule = 'tc-call ::= "[TOOL_CALLS][" call ("," " "? call){0,3} "]"',
    text_rule = 'tc-text ::= ([^\\[] [^\\x00]*)?',
  },
}

-- Strings and arrays in a schema without an upper bound get one, so that a
-- small model held by the grammar cannot wander inside a string forever;
-- every value the bounded schema allows is still valid for the tool's.
local function bounded(schema, depth)
  depth = depth or 0
  if type(schema) ~= "table" or depth > 32 then return schema end
  local out = {}
  for k, v in pairs(schema) do
    if type(v) == "table" then out[k] = bounded(v, depth + 1) else out[k] = v end
  end
  if json.is_array(schema) then return json.array(out) end
  local t = schema.type
  if t == "string" and not schema.maxLength and not schema.enum and schema.const == nil then
    out.maxLength = 200
  elseif t == "array" and not schema.maxItems then
    out.maxItems = 16
  end
  return json.object(out)
end

-- The JSON Schema of one call of any of `tools` in format F.
function M.call_schema(F, tools)
  local alts = json.array()
  for _, t in ipairs(tools) do
    local params = t.parameters
    if type(params) ~= "table" or next(params) == nil then params = {type = "object"} end
    alts[#alts + 1] = {
      type = "object",
      properties = {name = {const = t.name}, [F.name_key] = bounded(params)},
      required = json.array{"name", F.name_key},
      additionalProperties = false,
    }
  end
  if #alts == 1 then return alts[1] end
  return {anyOf = alts}
end

-- GBNF for an answer in format F offering `tools`: tool_choice "auto"
-- (text or one call), "required" (a call); nil when nothing to constrain.
function M.grammar(F, tools, tool_choice)
  tool_choice = tool_choice or "auto"
  if tool_choice == "none" or #tools == 0 then return nil end
  local call = hearth.grammar.from_schema(M.call_schema(F, tools), "call")
  local root = tool_choice == "required" and "root ::= tc-call" or "root ::= tc-call | tc-text"
  return root .. "\n" .. F.call_rule .. "\n" .. F.text_rule .. "\n" .. call
end

-- Counts the places in `text` where a call in format F starts.
local function openers(F, text)
  if F == M.formats.llama3 then
    local t = text:gsub("^%s*<|python_tag|>", ""):gsub("^%s+", "")
    return t:sub(1, 1) == "{" and 1 or 0
  end
  local n, i = 0, 1
  while true do
    local s, e = text:find(F.opener, i, true)
    if not s then return n end
    n, i = n + 1, e + 1
  end
end

-- Splits a whole answer: content, calls ({id, name, arguments = JSON text})
-- and, when some call could not be read, a message saying so.
function M.parse(F, text)
  local content, calls = hearth.toolcall.parse(text)
  local want = openers(F, text)
  local malformed
  if F == M.formats.mistral then
    if want > 0 and #calls == 0 then malformed = true end
  elseif want > #calls then
    malformed = true
  end
  if malformed then
    malformed = "the tool call could not be read; write it exactly as " .. F.example
  end
  return content, calls, malformed
end

-- ---- the prompt ------------------------------------------------------------------------

local function describe_tools(tools)
  local lines = {"You can use these tools (arguments as JSON Schema):"}
  for _, t in ipairs(tools) do
    lines[#lines + 1] = string.format("- %s: %s Arguments: %s", t.name, t.description or "",
                                      json.encode(t.parameters or {}))
  end
  return table.concat(lines, "\n")
end

function M.system_prompt(F, tools, model, extra, workspace)
  local parts = {
    "You are hearth's assistant. Do the user's task, using the tools when you need " ..
        "information or must act. Paths are relative to the workspace" ..
        (workspace and (" " .. workspace) or "") .. ".",
  }
  if not model.template_tools then parts[#parts + 1] = describe_tools(tools) end
  parts[#parts + 1] = F.instructions
  if extra then parts[#parts + 1] = extra end
  return table.concat(parts, "\n\n")
end

local SAMPLING = {"temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                  "frequency_penalty", "presence_penalty", "seed", "max_tokens", "stop",
                  "session"}

-- The model: hearth.chat with the tools, the grammar and the sampling keys.
local function default_generate(messages, opts, on_token)
  local o = {tools = opts.tools, grammar = opts.grammar, on_token = on_token}
  for _, k in ipairs(SAMPLING) do
    if opts[k] ~= nil then o[k] = opts[k] end
  end
  return hearth.chat(messages, o)
end

-- ---- the loop ----------------------------------------------------------------------------

local function select_tools(names)
  local all = hearth.tools.list()
  if not names then return all end
  local want, out = {}, {}
  for _, n in ipairs(names) do want[n] = true end
  for _, t in ipairs(all) do
    if want[t.name] then out[#out + 1] = t end
  end
  return out
end

local function openai(tools)
  local out = json.array()
  for _, t in ipairs(tools) do
    out[#out + 1] = {type = "function",
                     ["function"] = {name = t.name, description = t.description,
                                     parameters = t.parameters}}
  end
  return out
end

-- Runs one call: checked, then through the policy gate. Returns the
-- result's text for the model, its status and whether it succeeded.
local function run_call(call, by_name, tool_names)
  local tool = by_name[call.name]
  if not tool then
    return string.format("error: unknown tool '%s'; the tools are: %s", tostring(call.name),
                         tool_names), "unknown", false
  end
  local args, err = json.decode(call.arguments or "{}")
  if type(args) ~= "table" or json.is_array(args) then
    return string.format("error: the arguments of %s must be a JSON object%s", call.name,
                         err and (" (" .. err .. ")") or ""), "invalid", false
  end
  local ok, why = hearth.tools.validate(call.name, call.arguments)
  if not ok then
    return "error: " .. why, "invalid", false
  end
  local res = hearth.tools.call(call.name, call.arguments)
  return res.text or res.output or "", res.status, res.ok
end

-- M.run{task, tools?, max_steps?, timeout_ms?, format?, tool_choice?,
--       system?, generate?, sampling keys...} -> {answer, finish, steps, tool_calls}
function M.run(args)
  args = args or {}
  local task = args.task
  if type(task) ~= "string" or task == "" then error("the agent needs a task", 2) end
  local model = hearth.model()
  local fmt_name = args.format or model.tool_format
  local F = M.formats[fmt_name]
  if not F then error("unknown tool-call format '" .. tostring(fmt_name) .. "'", 2) end
  local max_steps = args.max_steps or 12
  local deadline = hearth.now() + (args.timeout_ms or 600000)
  local generate = args.generate or default_generate
  local tools = select_tools(args.tools)
  local by_name, names = {}, {}
  for _, t in ipairs(tools) do
    by_name[t.name] = t
    names[#names + 1] = t.name
  end
  local tool_names = #names > 0 and table.concat(names, ", ") or "(none)"
  local opts = {tools = openai(tools)}
  for _, k in ipairs(SAMPLING) do opts[k] = args[k] end
  -- one session per task: each step reuses the cached prefix (the
  -- conversation so far) and evaluates only what is new
  local own_session = opts.session == nil
  if own_session then
    opts.session = string.format("agent-%d-%d", hearth.now(), math.random(1 << 30))
  end
  local function finish(res)
    if own_session and args.generate == nil then hearth.session_close(opts.session) end
    return res
  end
  if args.grammar ~= false then
    opts.grammar = M.grammar(F, tools, args.tool_choice)
  end
  local messages = json.array{
    {role = "system",
     content = M.system_prompt(F, tools, model, args.system, hearth.workspace)},
    {role = "user", content = task},
  }
  local n_calls = 0

  for step = 1, max_steps do
    if hearth.now() >= deadline then
      hearth.emit("answer", {text = "", finish = "timeout"})
      return finish({answer = "", finish = "timeout", steps = step - 1, tool_calls = n_calls})
    end
    hearth.emit("step", {step = step})
    -- stream the content that is safely not part of a call
    local acc, shown, opened = {}, 0, false
    local function on_token(piece)
      acc[#acc + 1] = piece
      local text = table.concat(acc)
      acc = {text}
      local safe = hearth.toolcall.stream_safe(text)
      if safe > shown then
        hearth.emit("text", {step = step, text = text:sub(shown + 1, safe)})
        shown = safe
      end
      if not opened and openers(F, text) > 0 then
        opened = true
        hearth.emit("tool_call_start", {step = step})
      end
      if hearth.now() >= deadline then return false end
    end
    local text = generate(messages, opts, on_token)
    text = text or ""
    local content, calls, malformed = M.parse(F, text)
    if #calls == 0 and not malformed then
      if #content > shown then
        -- what the stream held back (e.g. trailing space), or a double's text
        hearth.emit("text", {step = step, text = content:sub(shown + 1)})
      end
      hearth.emit("answer", {text = content, finish = "answer"})
      return finish({answer = content, finish = "answer", steps = step, tool_calls = n_calls})
    end
    local assistant = {role = "assistant", content = content}
    if #calls > 0 then
      assistant.tool_calls = json.array()
      for _, c in ipairs(calls) do
        assistant.tool_calls[#assistant.tool_calls + 1] =
            {id = c.id, type = "function", ["function"] = {name = c.name, arguments = c.arguments}}
      end
    end
    messages[#messages + 1] = assistant
    if malformed then
      hearth.emit("tool_result", {step = step, tool_call_id = json.null, name = json.null,
                                  status = "malformed", ok = false, output = "error: " .. malformed})
      messages[#messages + 1] = {role = "tool", name = "error", tool_call_id = "malformed",
                                 content = "error: " .. malformed}
    end
    for _, c in ipairs(calls) do
      n_calls = n_calls + 1
      hearth.emit("tool_call", {step = step, tool_call_id = c.id, name = c.name,
                                arguments = c.arguments})
      local out, status, ok = run_call(c, by_name, tool_names)
      hearth.emit("tool_result", {step = step, tool_call_id = c.id, name = c.name,
                                  status = status, ok = ok, output = out})
      messages[#messages + 1] = {role = "tool", tool_call_id = c.id, name = c.name,
                                 content = out}
    end
  end
  hearth.emit("answer", {text = "", finish = "max_steps"})
  return finish({answer = "", finish = "max_steps", steps = max_steps, tool_calls = n_calls})
end

return M
