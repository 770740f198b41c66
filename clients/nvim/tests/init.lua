-- Headless end-to-end test of the mmlsp Neovim plugin against the real server.
--
--   MMLSP_NVIM_PYTHON=python MMLSP_NVIM_MODEL=DIR MMLSP_NVIM_RESULTS=out.json \
--   MMLSP_NVIM_WORKDIR=DIR nvim --headless -i NONE -u clients/nvim/tests/init.lua
--
-- Scenarios run one after another as vim.defer_fn chains: keys fed with
-- nvim_feedkeys are only processed by the main loop, so nothing here blocks in
-- vim.wait. Each scenario ends with pass, fail or skip (and a reason); the
-- results are written as JSON to MMLSP_NVIM_RESULTS and Neovim exits with
-- :cquit when any scenario failed. Works on Neovim 0.7.2 and 0.11.x.
local uv = vim.uv or vim.loop
local api = vim.api

local function env(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then
    return default
  end
  return value
end

local this = debug.getinfo(1, "S").source:sub(2)
local tests_dir = vim.fn.fnamemodify(this, ":p:h")
local plugin_dir = vim.fn.fnamemodify(tests_dir, ":h")
vim.opt.runtimepath:prepend(plugin_dir)
vim.opt.swapfile = false
vim.opt.shortmess:append("F")
vim.opt.more = false
vim.opt.showmode = false

local PYTHON = env("MMLSP_NVIM_PYTHON", "python3")
local MODEL = env("MMLSP_NVIM_MODEL")
local RESULTS = env("MMLSP_NVIM_RESULTS", tests_dir .. "/results.json")
local WORKDIR = env("MMLSP_NVIM_WORKDIR", vim.fn.tempname())
local ONLY = env("MMLSP_NVIM_ONLY")
local LOAD_TIMEOUT = tonumber(env("MMLSP_NVIM_LOAD_TIMEOUT_MS", "180000"))
local TOTAL_TIMEOUT = tonumber(env("MMLSP_NVIM_TOTAL_TIMEOUT_MS", "480000"))
vim.fn.mkdir(WORKDIR, "p")

local version = vim.version()
local VERSION = string.format("%d.%d.%d", version.major, version.minor, version.patch)

local results = {}
local finished = false
local ghost_failed = false -- set when the ghost_text scenario did not pass
local started = uv.hrtime()

local function log(msg)
  io.stderr:write(string.format("[nvim %s %6.1fs] %s\n", VERSION, (uv.hrtime() - started) / 1e9, msg))
end

local function finish(reason)
  if finished then
    return
  end
  finished = true
  local failed = reason ~= nil
  for _, r in ipairs(results) do
    if r.status == "fail" then
      failed = true
    end
  end
  local ok, messages = pcall(api.nvim_exec, "messages", true)
  local out = { nvim = VERSION, results = results, aborted = reason, messages = ok and messages or "" }
  local f = assert(io.open(RESULTS, "w"))
  f:write(vim.fn.json_encode(out))
  f:close()
  log(failed and ("FAILED" .. (reason and (": " .. reason) or "")) or "all scenarios passed or skipped")
  vim.schedule(function()
    if failed then
      vim.cmd("cquit 1")
    else
      vim.cmd("qall!")
    end
  end)
end

if not MODEL then
  results[1] = { name = "setup", status = "fail", detail = "MMLSP_NVIM_MODEL is not set" }
  finish("no model")
  return
end

-- The plugin under test.
local mmlsp = require("mmlsp")
local inline = require("mmlsp.inline")
local compat = require("mmlsp.compat")
mmlsp.setup({
  cmd = { PYTHON, "-m", "mmlsp", "--model", MODEL },
  settings = { timeBudgetMs = 30000, diagnosticsDebounceMs = 50 },
  inline = { debounce_ms = 50 },
})

-- Every vim.notify, so scenarios can see the errors a person would see.
local notes = {}
local original_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
  log("notify: " .. tostring(msg))
  return original_notify(msg, level, opts)
end

-- Helpers ---------------------------------------------------------------------

local function keys(str)
  api.nvim_feedkeys(api.nvim_replace_termcodes(str, true, false, true), "mt", false)
end

local function mode()
  return api.nvim_get_mode().mode
end

--- Polls `cond` every 20 ms until it returns a truthy value (passed to on_ok)
--- or `timeout_ms` passes (on_timeout is called).
local function wait_until(cond, timeout_ms, on_ok, on_timeout)
  local deadline = uv.now() + timeout_ms
  local function poll()
    if finished then
      return
    end
    local ok, value = pcall(cond)
    if not ok then
      on_timeout("error in condition: " .. tostring(value))
      return
    end
    if value then
      on_ok(value)
    elseif uv.now() > deadline then
      on_timeout("timed out after " .. timeout_ms .. " ms")
    else
      vim.defer_fn(poll, 20)
    end
  end
  poll()
end

local function client(bufnr)
  return compat.clients("mmlsp", bufnr)[1]
end

local function marks(bufnr)
  return api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, { details = true })
end

local function lines(bufnr)
  return api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

local function write_file(name, text)
  local path = WORKDIR .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- Scenario runner ---------------------------------------------------------------

local scenarios = {}
local function scenario(name, timeout_ms, fn)
  table.insert(scenarios, { name = name, timeout = timeout_ms, fn = fn })
end

local run_next

local function run(index)
  if finished then
    return
  end
  local sc = scenarios[index]
  if not sc then
    finish()
    return
  end
  if ONLY and not vim.tbl_contains(vim.split(ONLY, ",", { plain = true }), sc.name) and sc.name ~= "startup" then
    run(index + 1)
    return
  end
  local t0 = uv.hrtime()
  local done = false
  local ctx = {}
  --- Ends the scenario: status "pass", "fail" or "skip".
  function ctx.done(status, detail)
    if done then
      return
    end
    done = true
    local ms = math.floor((uv.hrtime() - t0) / 1e6)
    table.insert(results, { name = sc.name, status = status, detail = detail or "", ms = ms })
    log(string.format("%-16s %s (%d ms) %s", sc.name, status:upper(), ms, detail or ""))
    if sc.name == "ghost_text" and status ~= "pass" then
      ghost_failed = true
    end
    if sc.name == "startup" and status == "fail" then
      finish("startup failed: " .. tostring(detail))
      return
    end
    vim.schedule(function()
      run_next(index + 1)
    end)
  end
  --- Wraps a callback so that an error in it fails the scenario.
  function ctx.guard(fn)
    return function(...)
      if done then
        return
      end
      local ok, err = pcall(fn, ...)
      if not ok then
        ctx.done("fail", "error: " .. tostring(err))
      end
    end
  end
  function ctx.fail(detail)
    ctx.done("fail", detail)
  end
  --- wait_until whose timeout fails the scenario with `what`.
  function ctx.wait(what, cond, timeout_ms, on_ok)
    wait_until(cond, timeout_ms, ctx.guard(on_ok), function(why)
      ctx.fail(what .. ": " .. why)
    end)
  end
  vim.defer_fn(function()
    ctx.fail("scenario timed out after " .. sc.timeout .. " ms")
  end, sc.timeout)
  log("running " .. sc.name)
  ctx.guard(sc.fn)(ctx)
end
run_next = run

--- Back to normal mode, then `then_`.
local function normal_mode(ctx, then_)
  if mode() ~= "n" then
    keys("<Esc>")
  end
  ctx.wait("normal mode", function()
    return mode() == "n"
  end, 5000, then_)
end

--- Opens `path` and waits until the mmlsp client is attached to it.
local function open(ctx, path, then_)
  normal_mode(ctx, function()
    vim.cmd("edit! " .. vim.fn.fnameescape(path))
    local bufnr = api.nvim_get_current_buf()
    ctx.wait("mmlsp attached to " .. path, function()
      return client(bufnr) and inline._buffers[bufnr] ~= nil
    end, 30000, function()
      then_(bufnr)
    end)
  end)
end

-- The document where the tiny model gives a suggestion: typing the "." of
-- `os.path.` at the end of the last line.
local TYPING_BASE = { "import os", "x = os.path" }
local typing_buf

--- Resets the typing buffer, types "." at the end of its last line in insert
--- mode and waits for the ghost text; calls then_(suggestion).
local function show_ghost(ctx, then_)
  if ghost_failed then
    -- Fail fast instead of waiting a minute again for what never came.
    ctx.fail("no ghost text in the ghost_text scenario, so none to test here")
    return
  end
  normal_mode(ctx, function()
    api.nvim_set_current_buf(typing_buf)
    api.nvim_buf_set_lines(typing_buf, 0, -1, false, TYPING_BASE)
    api.nvim_win_set_cursor(0, { #TYPING_BASE, 0 })
    keys("A.")
    ctx.wait("ghost text after typing", function()
      local m = marks(typing_buf)
      return #m > 0 and inline.get(typing_buf) and m
    end, 60000, function(m)
      if not mode():match("^i") then
        ctx.fail("not in insert mode while the ghost text is shown (mode " .. mode() .. ")")
        return
      end
      local details = m[1][4] or {}
      if not (details.virt_text or details.virt_lines) then
        ctx.fail("extmark without virtual text: " .. vim.inspect(m[1]))
        return
      end
      then_(vim.deepcopy(inline.get(typing_buf)), details)
    end)
  end)
end

--- Polls mmlsp/status until the server has counted an accept of kind `how` (the
--- plugin ran the item's mmlsp.accepted command); calls then_(count).
local function server_counted_accept(ctx, how, then_)
  local count
  local function poll()
    mmlsp.status(function(status)
      local acceptance = type(status) == "table" and status.acceptance or nil
      local session = type(acceptance) == "table" and acceptance.session or nil
      count = type(session) == "table" and session["accepted_" .. how] or nil
    end)
  end
  ctx.wait("the server counting the " .. how .. " accept", function()
    poll()
    return type(count) == "number" and count > 0 and count
  end, 10000, then_)
end

local function expected_after(base_lines, row, col, text)
  local line = base_lines[row + 1]
  local pieces = vim.split(line:sub(1, col) .. text .. line:sub(col + 1), "\n", { plain = true })
  local out = {}
  for i = 1, row do
    out[i] = base_lines[i]
  end
  for _, p in ipairs(pieces) do
    table.insert(out, p)
  end
  for i = row + 2, #base_lines do
    table.insert(out, base_lines[i])
  end
  return out
end

-- Scenarios ---------------------------------------------------------------------

local broken_buf

scenario("startup", LOAD_TIMEOUT + 40000, function(ctx)
  local path = write_file("broken.py", "def f(:\n    pass\n")
  open(ctx, path, function(bufnr)
    broken_buf = bufnr
    local last
    local function poll()
      mmlsp.status(ctx.guard(function(status, err)
        last = status or err
        if type(status) == "table" and status.state == "ready" then
          ctx.done("pass", "model ready on " .. tostring(status.device))
        elseif type(status) == "table" and status.state == "failed" then
          ctx.fail("model failed to load: " .. tostring(status.message))
        else
          vim.defer_fn(poll, 200)
        end
      end))
    end
    poll()
    vim.defer_fn(function()
      ctx.fail("model not ready after " .. LOAD_TIMEOUT .. " ms: " .. vim.inspect(last))
    end, LOAD_TIMEOUT)
  end)
end)

scenario("diagnostics", 30000, function(ctx)
  ctx.wait("syntax diagnostics for broken.py", function()
    local found = {}
    for _, d in ipairs(vim.diagnostic.get(broken_buf)) do
      if d.source == "mmlsp" then
        table.insert(found, d)
      end
    end
    return #found > 0 and found
  end, 20000, function(found)
    local d = found[1]
    if d.lnum ~= 0 or d.severity ~= vim.diagnostic.severity.ERROR then
      ctx.fail("unexpected diagnostic: " .. vim.inspect(d))
      return
    end
    ctx.done("pass", string.format("%d diagnostic(s), first at %d:%d: %s", #found, d.lnum, d.col, d.message))
  end)
end)

scenario("ghost_text", 90000, function(ctx)
  local path = write_file("typing.py", table.concat(TYPING_BASE, "\n") .. "\n")
  open(ctx, path, function(bufnr)
    typing_buf = bufnr
    show_ghost(ctx, function(s, details)
      local shown = details.virt_text and details.virt_text[1][1] or ""
      ctx.done("pass", string.format("suggestion %q at %d:%d (virt_text %q)", s.text, s.row, s.col, shown))
    end)
  end)
end)

scenario("accept", 90000, function(ctx)
  show_ghost(ctx, function(s)
    local before = lines(typing_buf)
    local want = expected_after(before, s.row, s.col, s.text)
    keys("<Tab>")
    ctx.wait("buffer after <Tab>", function()
      return vim.deep_equal(lines(typing_buf), want)
    end, 5000, function()
      if not mode():match("^i") then
        ctx.fail("left insert mode on accept")
        return
      end
      server_counted_accept(ctx, "whole", function(n)
        ctx.done("pass", "buffer now " .. vim.inspect(lines(typing_buf)) .. "; server counted " .. n)
      end)
    end)
  end)
end)

scenario("accept_word", 90000, function(ctx)
  show_ghost(ctx, function(s)
    local word = inline._next_word(s.text)
    local want = expected_after(lines(typing_buf), s.row, s.col, word)
    keys("<M-Right>")
    ctx.wait("buffer after <M-Right>", function()
      return vim.deep_equal(lines(typing_buf), want)
    end, 5000, function()
      local rest = s.text:sub(#word + 1)
      local now = inline.get(typing_buf)
      if rest ~= "" and not (now and now.text == rest and #marks(typing_buf) > 0) then
        ctx.fail(string.format("expected the rest %q still shown, got %s", rest, vim.inspect(now)))
        return
      end
      server_counted_accept(ctx, "word", function(n)
        ctx.done("pass", string.format("accepted %q of %q (server counted %d)", word, s.text, n))
      end)
    end)
  end)
end)

scenario("dismiss_esc", 90000, function(ctx)
  show_ghost(ctx, function()
    local before = lines(typing_buf)
    keys("<Esc>")
    ctx.wait("ghost text gone after <Esc>", function()
      return mode() == "n" and #marks(typing_buf) == 0 and inline.get(typing_buf) == nil
    end, 5000, function()
      if not vim.deep_equal(lines(typing_buf), before) then
        ctx.fail("<Esc> changed the buffer: " .. vim.inspect(lines(typing_buf)))
        return
      end
      ctx.done("pass", "no extmarks, buffer unchanged")
    end)
  end)
end)

scenario("dismiss_move", 90000, function(ctx)
  show_ghost(ctx, function()
    keys("<Left>")
    ctx.wait("ghost text gone after <Left>", function()
      return #marks(typing_buf) == 0 and inline.get(typing_buf) == nil
    end, 5000, function()
      ctx.done("pass", "moving the cursor dismissed it")
    end)
  end)
end)

scenario("multiline", 30000, function(ctx)
  normal_mode(ctx, function()
    api.nvim_set_current_buf(typing_buf)
    api.nvim_buf_set_lines(typing_buf, 0, -1, false, { "def f(x):", "    " })
    api.nvim_win_set_cursor(0, { 2, 0 })
    keys("A")
    ctx.wait("insert mode", function()
      return mode():match("^i") and api.nvim_win_get_cursor(0)[2] == 4
    end, 5000, function()
      -- A made-up multi-line suggestion: the model's are one line here.
      inline.show(typing_buf, "return x\n    y = 1\nz")
      local m = marks(typing_buf)
      local d = m[1] and m[1][4] or {}
      if not (d.virt_text and d.virt_lines and #d.virt_lines == 2) then
        ctx.fail("expected virtual text and 2 virtual lines: " .. vim.inspect(m))
        return
      end
      keys("<M-C-Right>")
      local after_line = { "def f(x):", "    return x", "" }
      ctx.wait("buffer after accepting a line", function()
        return vim.deep_equal(lines(typing_buf), after_line)
      end, 5000, function()
        local rest = inline.get(typing_buf)
        if not (rest and rest.text == "    y = 1\nz" and rest.row == 2 and rest.col == 0) then
          ctx.fail("unexpected rest after accepting a line: " .. vim.inspect(rest))
          return
        end
        keys("<Tab>")
        local want = { "def f(x):", "    return x", "    y = 1", "z" }
        ctx.wait("buffer after accepting the rest", function()
          return vim.deep_equal(lines(typing_buf), want)
        end, 5000, function()
          local cursor = api.nvim_win_get_cursor(0)
          if cursor[1] ~= 4 or cursor[2] ~= 1 then
            ctx.fail("cursor not after the suggestion: " .. vim.inspect(cursor))
            return
          end
          ctx.done("pass", "virt_lines drawn; line then rest accepted")
        end)
      end)
    end)
  end)
end)

scenario("tab_fallthrough", 30000, function(ctx)
  local path = write_file("fallthrough.py", "x = 1\n")
  open(ctx, path, function(bufnr)
    vim.bo[bufnr].expandtab = false
    local map = vim.fn.maparg("<Tab>", "i", false, true)
    if type(map) ~= "table" or map.buffer ~= 1 then
      ctx.fail("no buffer-local <Tab> mapping: " .. vim.inspect(map))
      return
    end
    -- <Tab> right after "o": no suggestion can be shown yet.
    keys("o<Tab>")
    ctx.wait("a literal tab", function()
      return lines(bufnr)[2] ~= nil and lines(bufnr)[2]:sub(1, 1) == "\t"
    end, 5000, function()
      if lines(bufnr)[2] ~= "\t" then
        ctx.fail("expected a lone tab, got " .. vim.inspect(lines(bufnr)[2]))
        return
      end
      ctx.done("pass", "<Tab> inserted a tab")
    end)
  end)
end)

scenario("commands", 30000, function(ctx)
  for _, name in ipairs({ "MmlspExplain", "MmlspDocstring", "MmlspEdit", "MmlspCancel", "MmlspStatus", "MmlspRestart", "MmlspToggle" }) do
    if vim.fn.exists(":" .. name) ~= 2 then
      ctx.fail(":" .. name .. " is missing")
      return
    end
  end
  ctx.done("pass", "user commands defined")
end)

scenario("lsp_configs", 30000, function(ctx)
  -- `require("lspconfig").mmlsp.setup{}` loads this module through nvim-lspconfig.
  local lspconfig = require("lspconfig.configs.mmlsp")
  local default = lspconfig.default_config
  if not (default and default.cmd and vim.tbl_contains(default.filetypes, "python")) then
    ctx.fail("bad lspconfig.configs.mmlsp: " .. vim.inspect(lspconfig))
    return
  end
  if type(default.root_dir(WORKDIR .. "/typing.py")) ~= "string" then
    ctx.fail("lspconfig root_dir did not give a directory")
    return
  end
  if vim.lsp.config == nil then
    ctx.done("pass", "lspconfig config ok; no vim.lsp.config before 0.11")
    return
  end
  -- `vim.lsp.enable("mmlsp")` reads lsp/mmlsp.lua from the runtimepath.
  local native = vim.lsp.config["mmlsp"]
  if not (native and native.cmd and native.on_attach and vim.tbl_contains(native.filetypes or {}, "python")) then
    ctx.fail("vim.lsp.config.mmlsp is incomplete: " .. vim.inspect(native))
    return
  end
  ctx.done("pass", "lspconfig config and lsp/mmlsp.lua ok")
end)

scenario("launch_flags", 30000, function(ctx)
  -- Where code goes is set on the server's command line, never in initializationOptions
  -- (the server refuses those keys from an editor).
  local config = require("mmlsp.config")
  local settings = { backend = "openai", baseUrl = "http://gpu:8000/v1", apiKeyEnv = "MMLSP_K", model = "m" }
  local cmd = config.command({ "mmlsp" }, settings)
  local expected = { "--backend", "openai", "--base-url", "http://gpu:8000/v1", "--api-key-env", "MMLSP_K" }
  local joined = table.concat(cmd, " ")
  for i = 1, #expected, 2 do
    if not joined:find(expected[i] .. " " .. expected[i + 1], 1, true) then
      ctx.fail("missing " .. expected[i] .. " in " .. joined)
      return
    end
  end
  local init = config.init_options(settings)
  if init.backend ~= nil or init.baseUrl ~= nil or init.apiKeyEnv ~= nil or init.model ~= "m" then
    ctx.fail("launch keys sent as initializationOptions: " .. vim.inspect(init))
    return
  end
  ctx.done("pass", joined)
end)

scenario("warm_on_focus", 60000, function(ctx)
  -- Entering a buffer asks the server to warm its prompt (mmlsp/warm): its status
  -- counts the request (whether the server then warms depends on what it is doing).
  local c = client()
  if not c then
    ctx.fail("no client")
    return
  end
  local before
  local function warmups(cb)
    require("mmlsp.compat").request(c, "mmlsp/status", vim.NIL, function(err, result)
      local counts = (not err and result and result.completion and result.completion.counts) or {}
      cb(counts.warm_requests or 0)
    end, 0)
  end
  warmups(function(n)
    before = n
    vim.cmd("doautocmd BufEnter")
  end)
  local function poll(tries)
    warmups(function(n)
      if before and n > before then
        ctx.done("pass", "warm requests " .. before .. " -> " .. n)
      elseif tries > 0 then
        vim.defer_fn(function()
          poll(tries - 1)
        end, 250)
      else
        ctx.fail("no mmlsp/warm after BufEnter (" .. tostring(before) .. " -> " .. n .. ")")
      end
    end)
  end
  vim.defer_fn(function()
    poll(120)
  end, 500)
end)

local ACTIONS_TEXT = "def add(a, b):\n    return a + b\n"

scenario("code_action", 150000, function(ctx)
  local c = client()
  local provider = c and c.server_capabilities.codeActionProvider
  if not provider then
    ctx.done("skip", "server does not advertise codeActionProvider (yet)")
    return
  end
  local path = write_file("actions.py", ACTIONS_TEXT)
  open(ctx, path, function(bufnr)
    api.nvim_win_set_cursor(0, { 1, 4 })
    local before = lines(bufnr)
    local original_select = vim.ui.select
    local chosen
    -- Pick an mmlsp action (a docstring one when offered) instead of asking.
    vim.ui.select = function(items, opts, on_choice)
      vim.ui.select = original_select
      local pick, pick_index
      for i, item in ipairs(items) do
        local action = item.action or item[2]
        local client_id = (item.ctx and item.ctx.client_id) or item[1]
        local from = vim.lsp.get_client_by_id(client_id)
        if from and from.name == "mmlsp" and type(action) == "table" then
          local title = tostring(action.title)
          if not pick or title:lower():find("docstring") then
            pick, pick_index = item, i
            chosen = title
            if title:lower():find("docstring") then
              break
            end
          end
        end
      end
      if not pick then
        ctx.fail("no mmlsp code action among " .. #items)
        on_choice(nil, nil)
        return
      end
      on_choice(pick, pick_index)
    end
    vim.lsp.buf.code_action()
    ctx.wait("the action's edit", function()
      return not vim.deep_equal(lines(bufnr), before)
    end, 120000, function()
      vim.ui.select = original_select
      ctx.done("pass", string.format("applied %q: %s", tostring(chosen), vim.inspect(lines(bufnr))))
    end)
  end)
end)

scenario("hover", 90000, function(ctx)
  local c = client()
  if not (c and c.server_capabilities.hoverProvider) then
    ctx.done("skip", "server does not advertise hoverProvider (yet)")
    return
  end
  local path = write_file("hover.py", ACTIONS_TEXT .. "\nprint(add(1, 2))\n")
  open(ctx, path, function(bufnr)
    api.nvim_win_set_cursor(0, { 1, 4 }) -- on `add`
    local params = vim.lsp.util.make_position_params(0, c.offset_encoding or "utf-16")
    compat.request(c, "textDocument/hover", params, ctx.guard(function(err, result)
      if err or type(result) ~= "table" or not result.contents then
        ctx.fail("hover returned " .. vim.inspect(err or result))
        return
      end
      local text = table.concat(vim.lsp.util.convert_input_to_markdown_lines(result.contents), "\n")
      if not text:match("%S") then
        ctx.fail("hover content is empty: " .. vim.inspect(result))
        return
      end
      -- Neovim's own hover shows it in a floating window.
      vim.lsp.buf.hover()
      ctx.wait("hover float", function()
        for _, win in ipairs(api.nvim_list_wins()) do
          if api.nvim_win_get_config(win).relative ~= "" then
            return win
          end
        end
      end, 30000, function()
        ctx.done("pass", "hover: " .. text:sub(1, 120))
      end)
    end), bufnr)
  end)
end)

local function floats()
  local found = {}
  for _, win in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_config(win).relative ~= "" then
      table.insert(found, win)
    end
  end
  return found
end

local function close_floats()
  for _, win in ipairs(floats()) do
    pcall(api.nvim_win_close, win, true)
  end
end

--- The first warning or error notified since notes[mark].
local function problem_since(mark)
  for i = mark + 1, #notes do
    if notes[i].level >= vim.log.levels.WARN then
      return notes[i].msg
    end
  end
end

scenario("explain_command", 150000, function(ctx)
  local path = write_file("explain.py", ACTIONS_TEXT)
  open(ctx, path, function(bufnr)
    close_floats()
    api.nvim_win_set_cursor(0, { 1, 4 }) -- on `add`
    local win = api.nvim_get_current_win()
    local mark = #notes
    vim.cmd("MmlspExplain")
    ctx.wait("the explanation in a float", function()
      local err = problem_since(mark)
      if err then
        return { error = err }
      end
      for _, w in ipairs(floats()) do
        local text = table.concat(api.nvim_buf_get_lines(api.nvim_win_get_buf(w), 0, -1, false), "\n")
        if text:match("%S") then
          return { text = text }
        end
      end
    end, 120000, function(found)
      if found.error then
        ctx.fail(":MmlspExplain reported: " .. found.error)
        return
      end
      if api.nvim_get_current_win() ~= win or api.nvim_get_current_buf() ~= bufnr then
        ctx.fail("the explanation was also opened in a window (the server showed it too)")
        return
      end
      close_floats()
      ctx.done("pass", "float: " .. found.text:gsub("\n", " "):sub(1, 120))
    end)
  end)
end)

scenario("docstring_command", 150000, function(ctx)
  local path = write_file("docstring.py", ACTIONS_TEXT)
  open(ctx, path, function(bufnr)
    api.nvim_win_set_cursor(0, { 1, 4 }) -- on `add`
    local before = lines(bufnr)
    local mark = #notes
    vim.cmd("MmlspDocstring")
    ctx.wait("the docstring in the buffer", function()
      local err = problem_since(mark)
      if err then
        return { error = err }
      end
      if not vim.deep_equal(lines(bufnr), before) then
        return { lines = lines(bufnr) }
      end
    end, 120000, function(found)
      if found.error then
        ctx.fail(":MmlspDocstring reported: " .. found.error)
        return
      end
      local text = table.concat(found.lines, "\n")
      if not (text:find('"""', 1, true) or text:find("'''", 1, true)) then
        ctx.fail("the edit has no docstring: " .. vim.inspect(found.lines))
        return
      end
      ctx.done("pass", vim.inspect(found.lines))
    end)
  end)
end)

-- :MmlspEdit from visual mode: asks with vim.ui.input, sends the selection and the
-- instruction. With the tiny model the server either applies an edit (one undo step)
-- or refuses it with RequestFailed; then a scripted answer (the server's
-- workspace/applyEdit, as it sends it) shows the edit applied and undone.
scenario("edit_command", 150000, function(ctx)
  local path = write_file("edit.py", ACTIONS_TEXT)
  open(ctx, path, function(bufnr)
    local before = lines(bufnr)
    local uri = vim.uri_from_bufnr(bufnr)
    local asked = {}
    local original_input = vim.ui.input
    vim.ui.input = function(opts, on_confirm)
      table.insert(asked, opts.prompt)
      on_confirm("add type hints")
    end
    local sent, answer = nil, nil
    local original_request = compat.request
    compat.request = function(c, method, params, handler, buf)
      if method == "workspace/executeCommand" and params.command == "mmlsp.editSelection" then
        sent = params
        return original_request(c, method, params, function(err, result, ...)
          answer = { err = err, result = result }
          return handler(err, result, ...)
        end, buf)
      end
      return original_request(c, method, params, handler, buf)
    end
    local function restore()
      vim.ui.input = original_input
      compat.request = original_request
    end
    api.nvim_win_set_cursor(0, { 1, 0 })
    keys("Vj<Plug>(mmlsp-edit)")
    ctx.wait("the server's answer to mmlsp.editSelection", function()
      return answer
    end, 120000, function()
      if #asked ~= 1 then
        restore()
        ctx.fail("vim.ui.input was asked " .. #asked .. " times")
        return
      end
      local args = sent.arguments
      local want_range = { start = { line = 0, character = 0 }, ["end"] = { line = 1, character = 16 } }
      if args[1] ~= uri or not vim.deep_equal(args[2], want_range) or args[3] ~= "add type hints" then
        restore()
        ctx.fail("unexpected arguments: " .. vim.inspect(args))
        return
      end
      local real
      if answer.err then
        if answer.err.code ~= -32803 or not vim.deep_equal(lines(bufnr), before) then
          restore()
          ctx.fail("unexpected error or a changed buffer: " .. vim.inspect(answer.err))
          return
        end
        real = "refused: " .. tostring(answer.err.message):sub(1, 80)
      else
        if answer.result ~= true or vim.deep_equal(lines(bufnr), before) then
          restore()
          ctx.fail("no edit applied: " .. vim.inspect(answer))
          return
        end
        vim.cmd("silent! undo")
        if not vim.deep_equal(lines(bufnr), before) then
          restore()
          ctx.fail("one undo did not restore the buffer: " .. vim.inspect(lines(bufnr)))
          return
        end
        real = "applied and undone"
      end
      -- A scripted answer: the server applies the edit as the real one does.
      compat.request = function(c, method, params, handler, buf)
        if method == "workspace/executeCommand" and params.command == "mmlsp.editSelection" then
          local edit = {
            changes = {
              [params.arguments[1]] = {
                { range = params.arguments[2], newText = "def add(a: int, b: int) -> int:\n    return a + b" },
              },
            },
          }
          vim.lsp.handlers["workspace/applyEdit"](nil, { edit = edit }, { client_id = c.id, method = "workspace/applyEdit" })
          handler(nil, true, { method = method, client_id = c.id, bufnr = buf })
          return true, 1
        end
        return original_request(c, method, params, handler, buf)
      end
      vim.cmd("1,2MmlspEdit")
      restore()
      local edited = lines(bufnr)
      if edited[1] ~= "def add(a: int, b: int) -> int:" or #asked ~= 2 then
        ctx.fail("the scripted edit was not applied: " .. vim.inspect(edited))
        return
      end
      vim.cmd("silent! undo")
      if not vim.deep_equal(lines(bufnr), before) then
        ctx.fail("one undo did not restore the buffer: " .. vim.inspect(lines(bufnr)))
        return
      end
      ctx.done("pass", "real server: " .. real .. "; scripted edit applied and undone")
    end)
  end)
end)

--- MmlspGhostText's own attributes (not a link's).
local function ghost_hl()
  if api.nvim_get_hl then -- 0.9+
    local hl = api.nvim_get_hl(0, { name = "MmlspGhostText", link = true })
    return {
      link = hl.link,
      ctermfg = hl.ctermfg,
      fg = hl.fg,
      italic = hl.italic,
      cterm_italic = hl.cterm and hl.cterm.italic,
    }
  end
  local link = vim.fn.execute("highlight MmlspGhostText"):match("links to (%S+)")
  local gui = api.nvim_get_hl_by_name("MmlspGhostText", true)
  local cterm = api.nvim_get_hl_by_name("MmlspGhostText", false)
  return {
    link = link,
    ctermfg = cterm.foreground,
    fg = gui.foreground,
    italic = gui.italic,
    cterm_italic = cterm.italic,
  }
end

scenario("ghost_highlight", 30000, function(ctx)
  local function check(when)
    local hl = ghost_hl()
    if hl.link or not (hl.ctermfg and hl.fg and hl.italic and hl.cterm_italic) then
      return string.format(
        "%s: MmlspGhostText needs its own cterm and gui colour and italics, got %s",
        when,
        vim.inspect(hl)
      )
    end
  end
  local err = check("at startup")
  if err then
    ctx.fail(err)
    return
  end
  -- A colour scheme clears every group; the plugin defines it again.
  vim.cmd("colorscheme default")
  err = check("after :colorscheme default")
  if err then
    ctx.fail(err)
    return
  end
  ctx.done("pass", vim.inspect(ghost_hl()):gsub("%s+", " "))
end)

scenario("hover_key", 90000, function(ctx)
  local scratch = api.nvim_create_buf(false, true)
  vim.keymap.set("n", "K", "<Nop>", { buffer = scratch })
  if mmlsp.map_hover ~= nil and mmlsp.map_hover(scratch) then
    ctx.fail("map_hover replaced a buffer's own K mapping")
    return
  end
  local path = write_file("hover_key.py", ACTIONS_TEXT .. "\nprint(add(1, 2))\n")
  open(ctx, path, function()
    local map = vim.fn.maparg("K", "n", false, true)
    local ours = type(map) == "table" and map.buffer == 1 and (map.desc or ""):find("mmlsp") ~= nil
    if compat.has_010 then
      if ours then
        ctx.fail("mapped K on a Neovim that has its own LSP hover mapping")
        return
      end
      ctx.done("pass", "K left to Neovim's default")
      return
    end
    if not ours then
      ctx.fail("K is not mapped to hover in an attached buffer: " .. vim.inspect(map))
      return
    end
    close_floats()
    api.nvim_win_set_cursor(0, { 1, 4 }) -- on `add`
    keys("K")
    ctx.wait("hover float after K", function()
      return #floats() > 0
    end, 60000, function()
      close_floats()
      ctx.done("pass", "K shows the LSP hover")
    end)
  end)
end)

-- Go --------------------------------------------------------------------------

vim.defer_fn(function()
  finish("the whole run timed out after " .. TOTAL_TIMEOUT .. " ms")
end, TOTAL_TIMEOUT)

vim.defer_fn(function()
  log("Neovim " .. VERSION .. ", workdir " .. WORKDIR)
  run(1)
end, 0)
