-- mmlsp's work-done progress in the echo area, and :MmlspCancel.
--
-- The server reports model-backed work (fix, docstring, generate, implement, edit,
-- explain; loading the model) with window/workDoneProgress/create and $/progress
-- begin/report/end. Neovim keeps these but shows nothing before 0.12, and the work
-- takes 20 to 60 s on a CPU, so this module echoes the title and the latest message
-- of each of mmlsp's progress tokens ("mmlsp: Generate code with AI: thinking…"),
-- then how it ended ("…: done"), and sends window/workDoneProgress/cancel for the
-- running ones on cancel().
--
-- How it listens, without taking $/progress from anyone else:
--   0.10+  an LspProgress autocmd (Neovim's own handler runs it for every client);
--   0.7-0.9  a per-client handler on mmlsp's clients only (client.handlers), which
--          calls whatever global vim.lsp.handlers["$/progress"] there is at the time
--          (Neovim's, or the user's own) and then shows the message.
-- Other clients' progress, and the global handler table, are left alone.
local compat = require("mmlsp.compat")
local config = require("mmlsp.config")

local api = vim.api

local M = {}

M.NAME = "mmlsp"

-- Running work: token -> { client_id, title, message, percentage, cancellable }.
M._active = {}
-- The last line echoed (tests and the statusline read it).
M.last = nil
-- Clients whose $/progress handler is wrapped (before 0.10).
M._wrapped = {}

local group = nil

local function is_mmlsp(client_id)
  local client = client_id and vim.lsp.get_client_by_id(client_id)
  return client ~= nil and client.name == M.NAME
end

local function text(value)
  if value == nil or value == vim.NIL then
    return nil
  end
  value = tostring(value):gsub("%s+", " ")
  return value ~= "" and value or nil
end

--- The line for one piece of work: "<title>: <message> (<pct>%)", and how many
--- characters of it are the title.
local function line_of(work)
  local parts = work.title or "mmlsp"
  if not parts:find("^mmlsp") then
    parts = "mmlsp: " .. parts
  end
  local title = vim.fn.strchars(parts) + 2
  if work.message then
    parts = parts .. ": " .. work.message
  end
  if type(work.percentage) == "number" then
    parts = parts .. string.format(" (%d%%)", work.percentage)
  end
  return parts, title
end

--- Cuts `line` to `width` display cells. Keeps its first `keep` characters (the
--- title, and a label such as "writing: ") and the end of the rest, the newest words
--- of what the model writes: "mmlsp: writing the code: writing: …return sum(x)".
local function fit(line, width, keep)
  if vim.fn.strdisplaywidth(line) <= width then
    return line
  end
  local head = vim.fn.strcharpart(line, 0, keep)
  local tail = vim.fn.strcharpart(line, keep)
  local label = tail:match("^[^%s:…]+: ")
  if label then
    head, tail = head .. label, tail:sub(#label + 1)
  end
  tail = tail:gsub("^…", "")
  local room = width - vim.fn.strdisplaywidth(head) - 1
  if room < 8 then
    return vim.fn.strcharpart(line, 0, width - 1) .. "…"
  end
  while vim.fn.strdisplaywidth(tail) > room do
    tail = vim.fn.strcharpart(tail, 1)
  end
  return head .. "…" .. tail
end

--- Shows `line` in the echo area, cut to fit on one line (a longer one makes Neovim
--- ask to press ENTER). Not while the user types a command line or answers a
--- prompt: that would garble what they type.
local function echo(line, keep)
  M.last = line
  local mode = api.nvim_get_mode().mode
  if mode:sub(1, 1) == "c" or mode:sub(1, 1) == "r" then
    return
  end
  local width = math.max(10, (tonumber(vim.v.echospace) or (vim.o.columns - 12)) - 1)
  api.nvim_echo({ { fit(line, width, keep or 0) } }, false, {})
end

--- Handles one $/progress notification from client `client_id`.
function M.on_progress(client_id, params)
  if not config.options.progress or not is_mmlsp(client_id) or type(params) ~= "table" or type(params.value) ~= "table" then
    return
  end
  local token, value = params.token, params.value
  if token == nil then
    return
  end
  local work = M._active[token]
  if value.kind == "begin" then
    work = { client_id = client_id, title = text(value.title), cancellable = value.cancellable }
    M._active[token] = work
  elseif work == nil then
    return -- work that began before we listened
  end
  if value.kind == "end" then
    M._active[token] = nil
    work.message = text(value.message) or "done"
    work.percentage = nil
    -- How it ended. A failed action's reason comes from the server as a message of
    -- its own (window/showMessage), and the client reports the failed request too:
    -- echoing it a third time would only make Neovim ask to press ENTER.
    local ended = work.message
    if work.cancellable and ended ~= "done" and ended ~= "cancelled" then
      M.last = (line_of(work))
      return
    end
    vim.schedule(function()
      echo(line_of(work))
    end)
    return
  end
  work.message = text(value.message) or work.message
  if value.percentage ~= nil and value.percentage ~= vim.NIL then
    work.percentage = value.percentage
  end
  if value.cancellable ~= nil then
    work.cancellable = value.cancellable
  end
  vim.schedule(function()
    if M._active[token] == work then
      echo(line_of(work))
    end
  end)
end

--- One line for a statusline: the latest running mmlsp work, or "".
function M.status()
  for _, work in pairs(M._active) do
    return (line_of(work))
  end
  return ""
end

--- The running work: a list of { token, client_id, title, message, cancellable }.
function M.running()
  local out = {}
  for token, work in pairs(M._active) do
    table.insert(out, vim.tbl_extend("force", { token = token }, work))
  end
  return out
end

--- Asks the server to stop every running cancellable mmlsp work
--- (window/workDoneProgress/cancel). Returns how many were asked.
function M.cancel()
  local count = 0
  for token, work in pairs(M._active) do
    local client = vim.lsp.get_client_by_id(work.client_id)
    if work.cancellable and client and not compat.is_stopped(client) then
      compat.notify(client, "window/workDoneProgress/cancel", { token = token })
      work.message = "cancelling…"
      count = count + 1
    end
  end
  if count == 0 then
    vim.notify("mmlsp: nothing to cancel", vim.log.levels.INFO)
  else
    echo("mmlsp: cancelling…")
  end
  return count
end

--- Listens for progress (once). On 0.10+ an LspProgress autocmd; before, each mmlsp
--- client gets its own wrapper in attach().
function M.setup()
  if group ~= nil or not compat.has_010 then
    return
  end
  group = api.nvim_create_augroup("mmlsp_progress", { clear = true })
  api.nvim_create_autocmd("LspProgress", {
    group = group,
    callback = function(args)
      local data = args.data or {}
      M.on_progress(data.client_id, data.params)
    end,
  })
end

--- For an mmlsp client on Neovim before 0.10: wraps $/progress for this client only.
function M.attach(client)
  M.setup()
  if compat.has_010 or not client or type(client.handlers) ~= "table" then
    return
  end
  if M._wrapped[client.id] then
    return
  end
  M._wrapped[client.id] = true
  local own = client.handlers["$/progress"]
  local function wrapper(err, result, ctx, cfg)
    -- The client's own handler if it had one, else the global one as it is now
    -- (Neovim's, or the user's): it keeps client.messages and LspProgressUpdate.
    local handler = own or vim.lsp.handlers["$/progress"]
    local ret = handler and handler(err, result, ctx, cfg)
    if err == nil then
      pcall(M.on_progress, ctx and ctx.client_id, result)
    end
    return ret
  end
  client.handlers["$/progress"] = wrapper
end

return M
