-- prelude.lua — the `hearth` module of scripts, written over the C
-- primitives of lua/luab_hearth.c, and the Lua side of the sandbox
-- (coroutine, pcall, print, load, setmetatable wrappers). It runs once in
-- every script's state, before the script; docs/lua.md is its manual.
--
-- Waiting: every hearth function that waits (chat, generate, tools.call,
-- sleep) ends in C.next, which yields a sentinel value to hearthd's pump
-- when nothing is there yet. The wrapped coroutine.resume passes such a
-- yield up through the script's own coroutines and the result back down, so
-- scripts may wait inside coroutines of their own.

local C = ...
local SENT = C.sentinel
local next_event, doomed = C.next, C.doomed
local raw_pcall, raw_xpcall, raw_error = pcall, xpcall, error
local raw_setmetatable, raw_load, raw_type, raw_select = setmetatable, load, type, select
local rawget, rawset, ipairs, pairs, tostring = rawget, rawset, ipairs, pairs, tostring
local co_create, co_resume, co_yield, co_status, co_close =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.close
local tconcat, tunpack, tpack = table.concat, table.unpack, table.pack

-- ---- the sandbox ------------------------------------------------------------

-- A stop of the run (instruction budget, time slice, cancel) is not an
-- error a script can catch: pcall and friends raise it again.
local function recheck(ok, ...)
  if not ok then
    local d = doomed()
    if d then raw_error(d, 0) end
  end
  return ok, ...
end

function pcall(f, ...) return recheck(raw_pcall(f, ...)) end
function xpcall(f, h, ...) return recheck(raw_xpcall(f, h, ...)) end

local function forward(co, ok, ...)
  if ok and raw_select('#', ...) == 1 and (...) == SENT and co_status(co) == "suspended" then
    -- a hearth wait inside co: wait as well, then pass the wake-up down
    return forward(co, co_resume(co, co_yield(SENT)))
  end
  return recheck(ok, ...)
end

function coroutine.resume(co, ...)
  return forward(co, co_resume(co, ...))
end

function coroutine.wrap(f)
  local co = co_create(f)
  return function(...)
    local r = tpack(coroutine.resume(co, ...))
    if r[1] then return tunpack(r, 2, r.n) end
    if co_status(co) == "dead" then co_close(co) end
    raw_error(r[2], 0)
  end
end

function print(...)
  local n = raw_select('#', ...)
  local t = {}
  for i = 1, n do t[i] = tostring((raw_select(i, ...))) end
  C.output(tconcat(t, "\t", 1, n) .. "\n")
end

function warn(msg, ...)
  local m = tconcat({msg, ...})
  if m:sub(1, 1) ~= "@" then C.log("warning", m) end
end

function setmetatable(t, mt)
  -- finalizers run with hooks switched off: no limit could stop one
  if raw_type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    raw_error("setmetatable: __gc metamethods are not available to scripts", 2)
  end
  return raw_setmetatable(t, mt)
end

function load(chunk, name, mode, ...)
  -- text chunks only; an explicit environment (even nil) is passed on
  if raw_select('#', ...) > 0 then return raw_load(chunk, name, "t", (...)) end
  return raw_load(chunk, name, "t")
end

if C.allow_io then
  local raw_loadfile = loadfile
  function loadfile(file, mode, ...)
    if raw_select('#', ...) > 0 then return raw_loadfile(file, "t", (...)) end
    return raw_loadfile(file, "t")
  end
  function dofile(file)
    local f = assert(loadfile(file))
    return f()
  end
end

-- ---- the hearth module --------------------------------------------------------

local hearth = {}
local json = C.json
hearth.json = json
hearth.args = C.args or json.array()
hearth.workspace = C.workspace
hearth.name = C.name
hearth.now = C.now
hearth.emit = C.emit
hearth.model = C.model_info

local LEVELS = {debug = true, info = true, warning = true, error = true}

local function join(...)
  local t = tpack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  return tconcat(t, " ", 1, t.n)
end

-- hearth.log(message...) logs at info; hearth.log(level, message...) at level.
function hearth.log(a, ...)
  if LEVELS[a] and raw_select('#', ...) > 0 then return C.log(a, join(...)) end
  return C.log("info", join(a, ...))
end

function hearth.sleep(ms)
  local h = C.timer(ms)
  next_event(h)
end

local function task_handle(id)
  return {id = id, cancel = function() C.kill(id) end}
end

function hearth.spawn(f, ...)
  return task_handle(C.spawn(f, ...))
end

function hearth.timer(ms, f)
  return task_handle(C.spawn(function() hearth.sleep(ms); f() end))
end

function hearth.every(ms, f)
  return task_handle(C.spawn(function()
    while true do
      hearth.sleep(ms)
      if f() == false then return end
    end
  end))
end

-- Calls a C primitive from an API function; its errors are raised at the
-- API function's caller (the script's line), without the prelude's position.
local function call_c(f, ...)
  local r = tpack(pcall(f, ...))
  if not r[1] then
    local msg = r[2]
    if raw_type(msg) == "string" then msg = msg:gsub("^hearth:%d+: ", "") end
    raw_error(msg, 3)
  end
  return tunpack(r, 2, r.n)
end

-- ---- the model ---------------------------------------------------------------

local function request_options(opts)
  local o = {}
  if opts then
    for k, v in pairs(opts) do
      if k ~= "on_token" then o[k] = v end
    end
  end
  if opts and opts.on_token then o.stream = true end
  return o
end

local function answer(h, on_token)
  local stopped = false
  while true do
    local kind, a, b = next_event(h)
    if kind == "text" then
      if on_token and not stopped and on_token(a) == false then
        stopped = true
        C.cancel(h)
      end
    elseif kind == "done" then
      return a, b
    elseif kind == "error" then
      raw_error(a, 3)
    else
      raw_error("the request ended without an answer", 3)
    end
  end
end

-- hearth.chat(messages | text, opts) -> text, info
function hearth.chat(messages, opts)
  if raw_type(messages) == "string" then
    messages = {{role = "user", content = messages}}
  end
  local h = call_c(C.submit, "chat", messages, request_options(opts))
  local text, info = answer(h, opts and opts.on_token)
  return text, info
end

-- hearth.session_close(name) -> true | false, why: forgets a session's cache.
hearth.session_close = C.session_close

-- hearth.generate(prompt, opts) -> text, info
function hearth.generate(prompt, opts)
  local h = call_c(C.submit, "complete", prompt, request_options(opts))
  local text, info = answer(h, opts and opts.on_token)
  return text, info
end

-- ---- tools --------------------------------------------------------------------

hearth.tools = {}

function hearth.tools.list()
  return C.tools_list()
end

function hearth.tools.get(name)
  for _, t in ipairs(C.tools_list()) do
    if t.name == name then return t end
  end
  return nil
end

-- The OpenAI `tools` array of the named tools (all when names is nil).
function hearth.tools.openai(names)
  local want
  if names then
    want = {}
    for _, n in ipairs(names) do want[n] = true end
  end
  local out = json.array()
  for _, t in ipairs(C.tools_list()) do
    if not want or want[t.name] then
      out[#out + 1] = {type = "function",
                       ["function"] = {name = t.name, description = t.description,
                                       parameters = t.parameters}}
    end
  end
  return out
end

-- hearth.tools.call(name, args) -> {ok, status, output, error, text, truncated, asked, ran}
function hearth.tools.call(name, args)
  local h = call_c(C.tool_call, name, args)
  local kind, msg, res = next_event(h)
  if kind == "result" then return res end
  raw_error(msg or "the tool call ended without a result", 2)
end

hearth.tools.validate = C.tools_validate
hearth.tools.policy = C.tool_policy

hearth.toolcall = {parse = C.toolcall_parse, stream_safe = C.toolcall_stream_safe}
hearth.grammar = {from_schema = C.grammar_from_schema}

-- hearth.agent: the agent loop's module, loaded on first use.
raw_setmetatable(hearth, {__index = function(t, k)
  if k == "agent" then
    local a = C.load_agent()
    rawset(t, "agent", a)
    return a
  end
  return nil
end})

return hearth
