-- Headless test of the plugin's next edits (lua/mmlsp/next_edit.lua).
--
--   MMLSP_NE_CMD='["python", "tests/fake_next_edit_server.py", "--script", "rules.json"]' \
--   MMLSP_NE_RESULTS=out.json MMLSP_NE_WORKDIR=DIR \
--   nvim --headless -i NONE -u clients/nvim/tests/next_edit_init.lua
--
-- MMLSP_NE_CMD is the server command (a JSON list). With the scripted server
-- (tests/fake_next_edit_server.py, its rules written by tests/test_nvim_next_edit.py)
-- the fake scenarios run; with MMLSP_NE_REAL=1 (the real server and the tiny model)
-- only the real_server one. Scenarios run one after another as vim.defer_fn chains
-- (fed keys are processed by the main loop only); results are written as JSON to
-- MMLSP_NE_RESULTS and Neovim exits with :cquit when one failed. Works on 0.7 and 0.11.
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

local CMD = vim.fn.json_decode(env("MMLSP_NE_CMD", "[]"))
local RESULTS = env("MMLSP_NE_RESULTS", tests_dir .. "/next_edit_results.json")
local WORKDIR = env("MMLSP_NE_WORKDIR", vim.fn.tempname())
local REAL = env("MMLSP_NE_REAL") == "1"
local ONLY = env("MMLSP_NE_ONLY")
local TOTAL_TIMEOUT = tonumber(env("MMLSP_NE_TOTAL_TIMEOUT_MS", REAL and "400000" or "120000"))
vim.fn.mkdir(WORKDIR, "p")

local version = vim.version()
local VERSION = string.format("%d.%d.%d", version.major, version.minor, version.patch)

local results = {}
local finished = false
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
  log(failed and ("FAILED" .. (reason and (": " .. reason) or "")) or "all scenarios passed")
  vim.schedule(function()
    vim.cmd(failed and "cquit 1" or "qall!")
  end)
end

if #CMD == 0 then
  results[1] = { name = "setup", status = "fail", detail = "MMLSP_NE_CMD is not set" }
  finish("no server command")
  return
end

local mmlsp = require("mmlsp")
local next_edit = require("mmlsp.next_edit")
local inline = require("mmlsp.inline")
local compat = require("mmlsp.compat")
local config = require("mmlsp.config")
mmlsp.setup({
  cmd = CMD,
  settings = REAL and { timeBudgetMs = 30000 } or {},
  inline = { debounce_ms = 50, auto_trigger = not not REAL },
  next_edit = { debounce_ms = 150 },
})

-- Every prediction drawn, in order.
local shown = {}
next_edit.on_shown = function(bufnr, prediction)
  table.insert(shown, { bufnr = bufnr, tick = prediction.tick, id = prediction.id })
end

-- Helpers ---------------------------------------------------------------------

local function keys(str)
  api.nvim_feedkeys(api.nvim_replace_termcodes(str, true, false, true), "mt", false)
end

local function mode()
  return api.nvim_get_mode().mode
end

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
  return api.nvim_buf_get_extmarks(bufnr, next_edit.ns, 0, -1, { details = true })
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

--- The marks of the prediction by kind: deletes (hl_group ranges), inline insertions
--- (virtual text: inline, or the 0.7 overlay), virt_lines, and the hint.
local function drawn(bufnr)
  local out = { deletes = {}, inserts = {}, virt_lines = {}, hints = {} }
  for _, m in ipairs(marks(bufnr)) do
    local row, col, d = m[2], m[3], m[4] or {}
    if d.hl_group == next_edit.HL_DELETE and d.end_row then
      local text = api.nvim_buf_get_text(bufnr, row, col, d.end_row, d.end_col, {})
      table.insert(out.deletes, { row = row, col = col, text = table.concat(text, "\n") })
    end
    if d.virt_text then
      local text, hls = "", {}
      for _, chunk in ipairs(d.virt_text) do
        text = text .. chunk[1]
        hls[chunk[2]] = (hls[chunk[2]] or "") .. chunk[1]
      end
      local entry = { row = row, col = col, text = text, pos = d.virt_text_pos, by_hl = hls }
      if hls[next_edit.HL_HINT] then
        table.insert(out.hints, entry)
      else
        table.insert(out.inserts, entry)
      end
    end
    if d.virt_lines then
      for _, vl in ipairs(d.virt_lines) do
        local text = ""
        for _, chunk in ipairs(vl) do
          text = text .. chunk[1]
        end
        table.insert(out.virt_lines, { row = row, text = text, above = d.virt_lines_above or false })
      end
    end
  end
  return out
end

--- The messages the scripted server received (fake/log), to callback(events).
local function server_log(callback)
  compat.request(client(), "fake/log", vim.NIL, function(err, result)
    callback(err and {} or result or {})
  end, api.nvim_get_current_buf())
end

local function count(events, method, since)
  local n = 0
  for i = (since or 0) + 1, #events do
    if events[i].method == method then
      n = n + 1
    end
  end
  return n
end

-- Scenario runner ---------------------------------------------------------------

local scenarios = {}
local function scenario(name, timeout_ms, fn)
  table.insert(scenarios, { name = name, timeout = timeout_ms, fn = fn })
end

local function run(index)
  if finished then
    return
  end
  local sc = scenarios[index]
  if not sc then
    finish()
    return
  end
  if ONLY and not vim.tbl_contains(vim.split(ONLY, ",", { plain = true }), sc.name) then
    run(index + 1)
    return
  end
  local t0 = uv.hrtime()
  local done = false
  local ctx = {}
  function ctx.done(status, detail)
    if done then
      return
    end
    done = true
    local ms = math.floor((uv.hrtime() - t0) / 1e6)
    table.insert(results, { name = sc.name, status = status, detail = detail or "", ms = ms })
    log(string.format("%-18s %s (%d ms) %s", sc.name, status:upper(), ms, detail or ""))
    vim.schedule(function()
      run(index + 1)
    end)
  end
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
  function ctx.check(cond, detail)
    if not cond then
      error(detail, 0)
    end
  end
  function ctx.wait(what, cond, timeout_ms, on_ok)
    wait_until(cond, timeout_ms, ctx.guard(on_ok), function(why)
      ctx.fail(what .. ": " .. why)
    end)
  end
  --- Waits `ms`, then on_ok (guarded).
  function ctx.after(ms, on_ok)
    vim.defer_fn(ctx.guard(on_ok), ms)
  end
  vim.defer_fn(function()
    ctx.fail("scenario timed out after " .. sc.timeout .. " ms")
  end, sc.timeout)
  log("running " .. sc.name)
  ctx.guard(sc.fn)(ctx)
end

local function normal_mode(ctx, then_)
  if mode() ~= "n" then
    keys("<Esc>")
  end
  ctx.wait("normal mode", function()
    return mode() == "n"
  end, 5000, then_)
end

--- Opens a new file with `text` and waits until the client is attached to it.
local function open(ctx, name, text, then_)
  normal_mode(ctx, function()
    vim.cmd("edit! " .. vim.fn.fnameescape(write_file(name, text)))
    local bufnr = api.nvim_get_current_buf()
    ctx.wait("mmlsp attached to " .. name, function()
      return client(bufnr) and inline._buffers[bufnr] ~= nil
        and (next_edit._buffers[bufnr] ~= nil or not config.options.next_edit.enabled)
    end, 30000, function()
      then_(bufnr)
    end)
  end)
end

-- The document of the main scenarios; the scripted server's rules (in
-- tests/test_nvim_next_edit.py) answer typing ", tax" after "prices" on line 1.
local TOTAL = "def total(prices):\n    return sum(prices)\n\n\nprint(total([1, 2]))\n"

--- Opens TOTAL, types ", tax" in insert mode after "prices" on line 1, and waits for
--- the prediction; then_(bufnr, drawn).
local function typed_tax(ctx, name, then_)
  open(ctx, name, TOTAL, function(bufnr)
    api.nvim_win_set_cursor(0, { 1, 16 }) -- on the ")" after prices
    keys("i, tax")
    ctx.wait("the next edit drawn", function()
      local d = drawn(bufnr)
      return next_edit.is_visible(bufnr) and #d.deletes > 0 and d
    end, 10000, function(d)
      then_(bufnr, d)
    end)
  end)
end

-- Scenarios (the scripted server) ------------------------------------------------

if not REAL then
  scenario("draw", 20000, function(ctx)
    typed_tax(ctx, "draw.py", function(bufnr, d)
      ctx.check(mode():match("^i"), "not in insert mode: " .. mode())
      -- Line 2: "sum(prices)" removed (highlighted), "sum(prices) * (1 + tax)" inserted.
      ctx.check(#d.deletes == 1 and d.deletes[1].row == 1 and d.deletes[1].text == "sum(prices)",
        "deleted text: " .. vim.inspect(d.deletes))
      local ins = d.inserts[1]
      ctx.check(#d.inserts == 1 and ins.row == 1, "insertions: " .. vim.inspect(d.inserts))
      local inserted = ins.by_hl[next_edit.HL_INSERT]
      ctx.check(inserted == "sum(prices) * (1 + tax)", "inserted text: " .. vim.inspect(ins))
      if compat.has_010 then
        ctx.check(ins.pos == "inline" and ins.col == 22, "0.10+: inline at the end of the range: " .. vim.inspect(ins))
      else
        ctx.check(ins.pos == "overlay" and ins.col == 22, "0.7: overlay at the insertion: " .. vim.inspect(ins))
      end
      -- The cursor is on line 1: a hint there says where the edit is.
      ctx.check(#d.hints == 1 and d.hints[1].row == 0, "hint: " .. vim.inspect(d.hints))
      ctx.check(d.hints[1].text:find("next edit: line 2, <Tab> to jump", 1, true), "hint text: " .. d.hints[1].text)
      ctx.check(lines(bufnr)[2] == "    return sum(prices)", "the buffer changed: " .. vim.inspect(lines(bufnr)))
      ctx.done("pass", "delete " .. d.deletes[1].text .. ", insert " .. inserted .. ", hint " .. vim.inspect(d.hints[1].text))
    end)
  end)

  scenario("tab_jump_accept_chain", 30000, function(ctx)
    server_log(function(before)
      typed_tax(ctx, "accept.py", function(bufnr)
        keys("<Tab>") -- away from the edit: jump
        ctx.wait("the cursor on the edit", function()
          return api.nvim_win_get_cursor(0)[1] == 2
        end, 5000, function()
          local cursor = api.nvim_win_get_cursor(0)
          ctx.check(cursor[2] == 11, "cursor not at the edit's start: " .. vim.inspect(cursor))
          ctx.check(next_edit.is_visible(bufnr), "the jump hid the next edit")
          ctx.check(#drawn(bufnr).hints == 0, "a hint while on the edit's line")
          ctx.check(lines(bufnr)[2] == "    return sum(prices)", "the jump changed the text")
          keys("<Tab>") -- on it: apply
          ctx.wait("the edit applied", function()
            return lines(bufnr)[2] == "    return sum(prices) * (1 + tax)"
          end, 5000, function()
            ctx.check(mode():match("^i"), "left insert mode")
            local c = api.nvim_win_get_cursor(0)
            ctx.check(c[1] == 2 and c[2] == #"    return sum(prices) * (1 + tax)", "cursor after the edit: " .. vim.inspect(c))
            -- Chained: the next prediction (line 5) comes without typing.
            ctx.wait("the chained next edit", function()
              local d = drawn(bufnr)
              return #d.inserts > 0 and d.inserts[1].row == 4 and d
            end, 5000, function(d)
              ctx.check(d.hints[1] and d.hints[1].text:find("↓ next edit: line 5", 1, true), "hint: " .. vim.inspect(d.hints))
              keys("<Tab>")
              keys("<Tab>")
              ctx.wait("the chained edit applied", function()
                return lines(bufnr)[5] == "print(total([1, 2], tax=0.2))"
              end, 5000, function()
                server_log(ctx.guard(function(events)
                  local accepts, shown_ids = {}, {}
                  for i = #before + 1, #events do
                    local e = events[i]
                    if e.method == "workspace/executeCommand" then
                      table.insert(accepts, e.params)
                    elseif e.method == "mmlsp/nextEditShown" then
                      table.insert(shown_ids, e.params.id)
                    end
                  end
                  ctx.check(#accepts == 2, "accept commands: " .. vim.inspect(accepts))
                  local a = accepts[1]
                  ctx.check(a.command == "mmlsp.acceptNextEdit" and a.arguments[1].uri == vim.uri_from_bufnr(bufnr),
                    "accept command: " .. vim.inspect(a))
                  ctx.check(#shown_ids == 2 and shown_ids[1] == a.arguments[1].id and shown_ids[2] == accepts[2].arguments[1].id,
                    "shown notifications " .. vim.inspect(shown_ids) .. " for accepts " .. vim.inspect(accepts))
                  -- Undo: each accepted next edit is one step.
                  keys("<Esc>u")
                  ctx.wait("undo of the last accept", function()
                    return mode() == "n" and lines(bufnr)[5] == "print(total([1, 2]))"
                  end, 5000, function()
                    ctx.check(lines(bufnr)[2] == "    return sum(prices) * (1 + tax)", "undo took more: " .. vim.inspect(lines(bufnr)))
                    ctx.done("pass", "jump, apply, chained, accept commands and shown ids " .. vim.inspect(shown_ids))
                  end)
                end))
              end)
            end)
          end)
        end)
      end)
    end)
  end)

  scenario("esc_dismisses", 20000, function(ctx)
    typed_tax(ctx, "esc.py", function(bufnr)
      local requests = next_edit.stats(bufnr).requests
      keys("<Esc>")
      ctx.wait("normal mode and nothing drawn", function()
        return mode() == "n" and #marks(bufnr) == 0 and not next_edit.is_visible(bufnr)
      end, 5000, function()
        -- Not asked again for the same text (it would only come back).
        ctx.after(600, function()
          ctx.check(#marks(bufnr) == 0, "drawn again after <Esc>: " .. vim.inspect(marks(bufnr)))
          ctx.check(next_edit.stats(bufnr).requests == requests, "asked again after <Esc>")
          ctx.check(lines(bufnr)[1] == "def total(prices, tax):", "text: " .. vim.inspect(lines(bufnr)))
          -- In normal mode, <Esc> dismisses too (:MmlspNextEdit asks again).
          vim.cmd("MmlspNextEdit")
          ctx.wait("asked again by :MmlspNextEdit", function()
            return next_edit.is_visible(bufnr)
          end, 5000, function()
            keys("<Esc>")
            ctx.wait("dismissed in normal mode", function()
              return #marks(bufnr) == 0 and mode() == "n"
            end, 5000, function()
              ctx.done("pass", "<Esc> left insert mode and dismissed; <Esc> in normal mode too")
            end)
          end)
        end)
      end)
    end)
  end)

  scenario("stale_dropped", 30000, function(ctx)
    -- An answer for an older version (the rule answers with version - 1) is dropped.
    open(ctx, "stale.py", "x = 1\n", function(bufnr)
      api.nvim_win_set_cursor(0, { 1, 4 })
      local stale0 = next_edit.stats(bufnr).stale
      keys("aOLD")
      ctx.wait("the outdated answer", function()
        return next_edit.stats(bufnr).stale > stale0
      end, 5000, function()
        ctx.check(not next_edit.is_visible(bufnr) and #marks(bufnr) == 0, "an outdated answer was drawn")
        -- A slow answer (700 ms) overtaken by typing: cancelled, and dropped.
        local shown0 = #shown
        server_log(ctx.guard(function(before)
          keys("<Esc>A slow")
          local first_id
          ctx.wait("the first slow request", function()
            return first_id
          end, 5000, function()
            keys("1")
            local tick
            ctx.wait("the answer to the last request drawn", function()
              if not tick and lines(bufnr)[1]:find("slow1", 1, true) then
                tick = api.nvim_buf_get_changedtick(bufnr)
              end
              return tick and next_edit.is_visible(bufnr)
            end, 8000, function()
              ctx.after(900, function() -- every slow answer has arrived by now
                ctx.check(#shown == shown0 + 1, "drawn " .. (#shown - shown0) .. " times")
                ctx.check(shown[#shown].tick == tick, "drawn for an older text")
                server_log(ctx.guard(function(events)
                  local cancelled = false
                  for i = #before + 1, #events do
                    if events[i].method == "$/cancelRequest" and events[i].params.id == first_id then
                      cancelled = true
                    end
                  end
                  ctx.check(cancelled, "no $/cancelRequest for request " .. first_id)
                  ctx.done("pass", "outdated version dropped; superseded request " .. first_id .. " cancelled, one drawn")
                end))
              end)
            end)
          end)
          -- Finds the id of the first mmlsp/nextEdit sent for " slow".
          local function poll()
            server_log(function(events)
              for i = #before + 1, #events do
                local e = events[i]
                if e.method == "mmlsp/nextEdit" and not first_id then
                  first_id = e.id
                end
              end
              if not first_id then
                vim.defer_fn(poll, 30)
              end
            end)
          end
          poll()
        end))
      end)
    end)
  end)

  scenario("ghost_text_first", 20000, function(ctx)
    typed_tax(ctx, "ghost.py", function(bufnr)
      inline.show(bufnr, "GHOST")
      keys("<Tab>")
      ctx.wait("the ghost text accepted", function()
        return lines(bufnr)[1]:find("GHOST", 1, true)
      end, 5000, function()
        ctx.check(lines(bufnr)[2] == "    return sum(prices)", "the next edit was applied too")
        ctx.check(api.nvim_win_get_cursor(0)[1] == 1, "the cursor jumped")
        ctx.done("pass", "<Tab> took the ghost text: " .. lines(bufnr)[1])
      end)
    end)
  end)

  scenario("lines", 20000, function(ctx)
    open(ctx, "lines.py", "def f(x):\n    y = x\nprint(f(1))\n", function(bufnr)
      api.nvim_win_set_cursor(0, { 2, 8 })
      keys("A * 2")
      ctx.wait("the next edit drawn", function()
        local d = drawn(bufnr)
        return #d.virt_lines >= 2 and d
      end, 10000, function(d)
        local below, above
        for _, vl in ipairs(d.virt_lines) do
          if vl.above then
            above = vl
          else
            below = vl
          end
        end
        ctx.check(below and below.row == 1 and below.text == "    return y", "lines below: " .. vim.inspect(d.virt_lines))
        ctx.check(above and above.row == 2 and above.text == "# call it", "lines above: " .. vim.inspect(d.virt_lines))
        ctx.check(#d.hints == 0, "a hint on the edit's line")
        keys("<Tab>")
        local want = { "def f(x):", "    y = x * 2", "    return y", "# call it", "print(f(1))" }
        ctx.wait("the lines applied", function()
          return vim.deep_equal(lines(bufnr), want)
        end, 5000, function()
          ctx.done("pass", "virt_lines below and above, applied")
        end)
      end)
    end)
  end)

  scenario("normal_mode_undo", 20000, function(ctx)
    open(ctx, "normal.py", "count = 0\nname = 'x'\n", function(bufnr)
      api.nvim_win_set_cursor(0, { 1, 0 })
      keys("cwtotal<Esc>") -- an edit in normal mode: "total = 0"
      ctx.wait("the next edit drawn", function()
        return next_edit.is_visible(bufnr)
      end, 10000, function()
        ctx.check(mode() == "n", "mode " .. mode())
        local d = drawn(bufnr)
        ctx.check(#d.inserts == 1 and d.inserts[1].row == 0, "insertion: " .. vim.inspect(d.inserts))
        keys("<Tab>")
        ctx.wait("the edit applied", function()
          return lines(bufnr)[1] == "total = 0  # the total"
        end, 5000, function()
          ctx.check(mode() == "n", "mode " .. mode())
          keys("u")
          ctx.wait("one undo", function()
            return lines(bufnr)[1] == "total = 0"
          end, 5000, function()
            ctx.after(300, function()
              ctx.check(lines(bufnr)[1] == "total = 0", "undo took more: " .. vim.inspect(lines(bufnr)))
              ctx.done("pass", "applied in normal mode, one undo step")
            end)
          end)
        end)
      end)
    end)
  end)

  scenario("option_off", 20000, function(ctx)
    local saved = vim.deepcopy(config.options)
    config.options.next_edit.enabled = false
    open(ctx, "off.py", TOTAL, function(bufnr)
      ctx.check(next_edit._buffers[bufnr] == nil, "next edits attached while off")
      local map = vim.fn.maparg("<Tab>", "n", false, true)
      ctx.check(type(map) ~= "table" or map.buffer ~= 1, "a normal-mode <Tab> while off: " .. vim.inspect(map))
      api.nvim_win_set_cursor(0, { 1, 16 })
      keys("i, tax")
      ctx.after(600, function()
        config.options = saved
        ctx.check(#marks(bufnr) == 0, "drawn while off")
        ctx.check(inline._buffers[bufnr] ~= nil, "ghost text is off too")
        ctx.done("pass", "nothing attached or drawn; ghost text still on")
      end)
    end)
  end)
end

-- Scenario (the real server, the tiny model) --------------------------------------

if REAL then
  scenario("real_server", 300000, function(ctx)
    open(ctx, "real.py", TOTAL, function(bufnr)
      -- Wait for the model, then edit.
      local function ready()
        mmlsp.status(ctx.guard(function(status)
          if type(status) == "table" and status.state == "ready" then
            api.nvim_win_set_cursor(0, { 1, 16 })
            keys("i, tax")
            ctx.wait("a reply to mmlsp/nextEdit", function()
              local s = next_edit.stats(bufnr)
              return (s.replies > 0 or s.errors > 0) and s
            end, 240000, function(s)
              ctx.check(s.errors == 0, "error: " .. tostring(s.last_error))
              ctx.check(not s.unsupported, "the server does not know mmlsp/nextEdit")
              mmlsp.status(ctx.guard(function(st)
                local ne = type(st) == "table" and st.nextEdit or {}
                ctx.check((ne.requests or 0) >= 1, "server status: " .. vim.inspect(ne))
                ctx.done("pass", string.format("requests %d, replies %d (shown %d); server %s",
                  s.requests, s.replies, s.shown, vim.inspect(ne):gsub("%s+", " ")))
              end))
            end)
          elseif type(status) == "table" and status.state == "failed" then
            ctx.fail("model failed: " .. tostring(status.message))
          else
            vim.defer_fn(ready, 200)
          end
        end))
      end
      ready()
    end)
  end)
end

vim.defer_fn(function()
  finish("the whole run timed out after " .. TOTAL_TIMEOUT .. " ms")
end, TOTAL_TIMEOUT)

vim.defer_fn(function()
  log("Neovim " .. VERSION .. ", workdir " .. WORKDIR)
  run(1)
end, 0)
