-- User commands: :MmlspExplain, :MmlspDocstring, :MmlspEdit, :MmlspCancel, :MmlspStatus,
-- :MmlspRestart, :MmlspToggle, :MmlspNextEdit, :MmlspNextEditToggle; and the
-- visual-mode mapping <Plug>(mmlsp-edit).
--
-- :MmlspEdit [instruction] (a range, e.g. from visual mode) asks for the
-- instruction with vim.ui.input when none is given, then sends
--   command    "mmlsp.editSelection"
--   arguments  { URI, Range, instruction }
--   result     true when the server applied the edit with workspace/applyEdit
--              (one undo step), or a WorkspaceEdit for the client to apply.
--
-- Explain and docstring are server commands (workspace/executeCommand), the
-- contract with the server being:
--
--   command    "mmlsp.explain" | "mmlsp.addDocstring"
--   arguments  { URI, Range }       -- Range: the selection, or empty at the cursor
--              mmlsp.explain adds { show = false }: the plugin shows the reply
--              itself, so the server must not also open it (window/showDocument)
--   result     mmlsp.explain: a Markdown string, a MarkupContent, or
--              { contents = MarkupContent | string }; null when the server showed
--              the explanation itself (window/showDocument or window/showMessage).
--              mmlsp.addDocstring: null when the server applied the edit with
--              workspace/applyEdit, or a WorkspaceEdit for the client to apply.
--
-- When the server does not list the command in executeCommandProvider, the
-- command falls back to the server's code action whose title matches (for
-- example "Add docstring", "Explain"), resolving it when needed.
local compat = require("mmlsp.compat")
local config = require("mmlsp.config")

local api = vim.api

local M = {}

M.EXPLAIN = "mmlsp.explain"
M.ADD_DOCSTRING = "mmlsp.addDocstring"
M.EDIT = "mmlsp.editSelection"

local function notify(msg, level)
  vim.notify("mmlsp: " .. msg, level or vim.log.levels.INFO)
end

local function client_for(bufnr)
  local client = compat.clients("mmlsp", bufnr)[1]
  if not client then
    notify("no mmlsp server is attached to this buffer", vim.log.levels.WARN)
  end
  return client
end

local function lsp_position(bufnr, row, col, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  return { line = row, character = compat.character(line, math.min(col, #line), encoding) }
end

--- The command's argument: the document, the cursor, and the selection. `range`
--- is {line1, line2} (1-based, from a :command range) or nil for the cursor.
function M.arguments(bufnr, encoding, range)
  local cursor = api.nvim_win_get_cursor(0)
  local position = lsp_position(bufnr, cursor[1] - 1, cursor[2], encoding)
  local lsp_range = { start = position, ["end"] = position }
  if range then
    local first, last = range[1] - 1, range[2] - 1
    local start_col, end_col = 0, nil
    -- A charwise visual selection on the same lines narrows the range.
    local vs, ve = api.nvim_buf_get_mark(bufnr, "<"), api.nvim_buf_get_mark(bufnr, ">")
    if vs[1] - 1 == first and ve[1] - 1 == last and vim.fn.visualmode() == "v" then
      start_col, end_col = vs[2], ve[2] + 1
    end
    local last_line = api.nvim_buf_get_lines(bufnr, last, last + 1, false)[1] or ""
    end_col = math.min(end_col or #last_line, #last_line)
    lsp_range = {
      start = lsp_position(bufnr, first, start_col, encoding),
      ["end"] = lsp_position(bufnr, last, end_col, encoding),
    }
  end
  return { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, range = lsp_range, position = position }
end

local function advertises(client, command)
  local provider = (client.server_capabilities or {}).executeCommandProvider
  return type(provider) == "table" and vim.tbl_contains(provider.commands or {}, command)
end

local function markdown_lines(result)
  if type(result) == "table" and result.contents then
    result = result.contents
  end
  if result == nil or result == vim.NIL then
    return nil
  end
  local lines = vim.lsp.util.convert_input_to_markdown_lines(result)
  while #lines > 0 and lines[#lines]:match("^%s*$") do
    table.remove(lines)
  end
  return #lines > 0 and lines or nil
end

--- Shows Markdown lines in a float or a split (option explain_view).
function M.show_markdown(lines, title)
  if config.options.explain_view == "split" then
    vim.cmd("botright new")
    local buf = api.nvim_get_current_buf()
    api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    vim.bo[buf].buftype = "nofile"
    vim.bo[buf].bufhidden = "wipe"
    vim.bo[buf].swapfile = false
    vim.bo[buf].filetype = "markdown"
    pcall(api.nvim_buf_set_name, buf, title or "mmlsp://explain")
    return buf
  end
  local buf = vim.lsp.util.open_floating_preview(lines, "markdown", { border = "rounded", focus_id = "mmlsp_explain" })
  return buf
end

local function apply_edit(client, edit)
  if type(edit) == "table" and (edit.changes or edit.documentChanges) then
    vim.lsp.util.apply_workspace_edit(edit, client.offset_encoding or "utf-16")
    return true
  end
  return false
end

--- The executeCommand arguments of mmlsp.explain / mmlsp.addDocstring for the
--- location `args` (from M.arguments): the server's documented form
--- `[uri, position-or-range, ...]`.
function M.command_arguments(command, args)
  local arguments = { args.textDocument.uri, args.range }
  if command == M.EXPLAIN then
    table.insert(arguments, { show = false })
  end
  return arguments
end

--- Sends workspace/executeCommand with `arguments` (a list, sent as it is).
local function execute(client, bufnr, command, arguments, on_result)
  local params = { command = command, arguments = arguments }
  compat.request(client, "workspace/executeCommand", params, function(err, result)
    if err then
      -- RequestFailed (-32803): the server has already shown the reason with
      -- window/showMessage; RequestCancelled (-32800): the user cancelled it.
      if err.code ~= -32803 and err.code ~= -32800 then
        notify(command .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      end
      return
    end
    on_result(result)
  end, bufnr)
end

-- Runs the first mmlsp code action whose title matches `pattern`.
local function run_code_action(client, bufnr, args, pattern, on_done)
  local diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr, { lnum = args.position.line })) do
    local lsp = d.user_data and d.user_data.lsp
    if not (type(lsp) == "table" and lsp.range and lsp.message) then
      -- 0.7 keeps only some LSP fields: rebuild the diagnostic (byte columns).
      lsp = {
        range = {
          start = { line = d.lnum, character = d.col },
          ["end"] = { line = d.end_lnum or d.lnum, character = d.end_col or d.col },
        },
        severity = d.severity,
        message = d.message,
        source = d.source,
        code = d.code,
      }
    end
    table.insert(diagnostics, lsp)
  end
  local params = { textDocument = args.textDocument, range = args.range, context = { diagnostics = diagnostics } }
  compat.request(client, "textDocument/codeAction", params, function(err, actions)
    if err or type(actions) ~= "table" then
      notify("code actions failed: " .. (err and err.message or "no result"), vim.log.levels.ERROR)
      return
    end
    local chosen
    for _, action in ipairs(actions) do
      if type(action.title) == "string" and action.title:lower():find(pattern) then
        chosen = action
        break
      end
    end
    if not chosen then
      notify("no '" .. pattern .. "' action here", vim.log.levels.WARN)
      return
    end
    local function finish(action)
      apply_edit(client, action.edit)
      local command = action.command
      if type(command) == "table" and command.command then
        execute(client, bufnr, command.command, command.arguments, function(result)
          if on_done then
            on_done(result)
          end
        end)
      elseif on_done then
        on_done(nil)
      end
    end
    local provider = (client.server_capabilities or {}).codeActionProvider
    local resolvable = type(provider) == "table" and provider.resolveProvider
    if not chosen.edit and resolvable and chosen.data ~= nil then
      compat.request(client, "codeAction/resolve", chosen, function(rerr, resolved)
        if rerr then
          notify("resolving the action failed: " .. (rerr.message or ""), vim.log.levels.ERROR)
          return
        end
        finish(resolved or chosen)
      end, bufnr)
    else
      finish(chosen)
    end
  end, bufnr)
end

-- What the status line says while the model works (it can take a while).
local WORKING = {
  [M.EXPLAIN] = "explaining…",
  [M.ADD_DOCSTRING] = "writing the docstring…",
  [M.EDIT] = "editing…",
}

local function run(command, pattern, range, on_result)
  local bufnr = api.nvim_get_current_buf()
  local client = client_for(bufnr)
  if not client then
    return
  end
  notify(WORKING[command] or (command .. "…"))
  local args = M.arguments(bufnr, client.offset_encoding or "utf-16", range)
  if advertises(client, command) then
    execute(client, bufnr, command, M.command_arguments(command, args), function(result)
      on_result(client, result)
    end)
    return
  end
  local provider = (client.server_capabilities or {}).codeActionProvider
  if not provider then
    notify("the server offers neither " .. command .. " nor code actions", vim.log.levels.WARN)
    return
  end
  run_code_action(client, bufnr, args, pattern, function(result)
    on_result(client, result)
  end)
end

--- Explains the selection (`range` = {line1, line2}) or the code at the cursor.
function M.explain(range)
  run(M.EXPLAIN, "explain", range, function(_, result)
    local lines = markdown_lines(result)
    if lines then
      M.show_markdown(lines, "mmlsp://explain")
    end
  end)
end

--- Adds (or updates) the docstring of the function or class at the cursor.
function M.docstring(range)
  run(M.ADD_DOCSTRING, "docstring", range, function(client, result)
    apply_edit(client, result)
  end)
end

--- Rewrites the selection (`range` = {line1, line2}) or the code at the cursor as
--- `instruction` says; asks for the instruction with vim.ui.input when it is nil.
function M.edit(range, instruction)
  local bufnr = api.nvim_get_current_buf()
  local client = client_for(bufnr)
  if not client then
    return
  end
  -- Read the selection now: the input prompt may move the cursor or the marks.
  local args = M.arguments(bufnr, client.offset_encoding or "utf-16", range)
  local function send(text)
    if text == nil or not text:match("%S") then
      return -- cancelled, or nothing typed
    end
    if not advertises(client, M.EDIT) then
      notify("the server does not offer " .. M.EDIT, vim.log.levels.WARN)
      return
    end
    notify(WORKING[M.EDIT])
    execute(client, bufnr, M.EDIT, { args.textDocument.uri, args.range, text }, function(result)
      apply_edit(client, result)
    end)
  end
  if instruction ~= nil and instruction:match("%S") then
    send(instruction)
  else
    vim.ui.input({ prompt = "mmlsp edit: " }, send)
  end
end

--- Calls back with the server's mmlsp/status ({state, model, device, ...}), or
--- prints it.
function M.status(callback)
  local bufnr = api.nvim_get_current_buf()
  local client = compat.clients("mmlsp", bufnr)[1] or compat.clients("mmlsp")[1]
  if not client then
    if callback then
      callback(nil, "not running")
    else
      notify("not running")
    end
    return
  end
  compat.request(client, "mmlsp/status", vim.NIL, function(err, result)
    if callback then
      callback(result, err and err.message)
      return
    end
    if err or type(result) ~= "table" then
      notify("status failed: " .. (err and err.message or "no result"), vim.log.levels.ERROR)
      return
    end
    -- One short line (a long one makes Neovim ask to press ENTER), e.g.
    -- "state ready, model builtin:gemma-3-270m on cpu; chat builtin:smollm2-135m-instruct ready"
    local function given(value)
      return value ~= nil and value ~= vim.NIL and value ~= ""
    end
    local line = "state " .. tostring(result.state) .. ", model " .. tostring(result.model)
    if given(result.device) then
      line = line .. " on " .. tostring(result.device)
    end
    if given(result.message) and result.message ~= result.state then
      line = line .. " (" .. tostring(result.message) .. ")"
    end
    -- The chat model (actions, hover) when it is a separate one.
    local chat = result.chat
    if type(chat) == "table" and given(chat.model) and chat.model ~= result.model then
      line = line .. "; chat " .. tostring(chat.model) .. " " .. tostring(chat.state)
      if chat.state == "failed" and given(chat.message) then
        line = line .. " (" .. tostring(chat.message) .. ")"
      end
    end
    notify(line)
  end, bufnr)
end

local function range_of(args)
  if args.range and args.range > 0 then
    return { args.line1, args.line2 }
  end
  return nil
end

function M.create()
  local create = api.nvim_create_user_command
  create("MmlspExplain", function(args)
    M.explain(range_of(args))
  end, { range = true, desc = "mmlsp: explain the selection or the code at the cursor" })
  create("MmlspDocstring", function(args)
    M.docstring(range_of(args))
  end, { range = true, desc = "mmlsp: add or update the docstring at the cursor" })
  create("MmlspEdit", function(args)
    M.edit(range_of(args), args.args)
  end, {
    range = true,
    nargs = "*",
    desc = "mmlsp: rewrite the selection as an instruction says (asked when not given)",
  })
  vim.keymap.set("x", "<Plug>(mmlsp-edit)", ":MmlspEdit<CR>", {
    silent = true,
    desc = "mmlsp: rewrite the selection as an instruction says",
  })
  create("MmlspCancel", function()
    require("mmlsp.progress").cancel()
  end, { desc = "mmlsp: stop the running AI action" })
  create("MmlspStatus", function()
    M.status()
  end, { desc = "mmlsp: show the model's state" })
  create("MmlspRestart", function()
    require("mmlsp").stop(true)
  end, { desc = "mmlsp: restart the server" })
  create("MmlspToggle", function(args)
    local enabled = require("mmlsp.inline").toggle(nil, args.bang)
    if enabled ~= nil then
      notify("ghost text " .. (enabled and "on" or "off"))
    end
  end, { bang = true, desc = "mmlsp: toggle ghost text in this buffer (! for all)" })
  create("MmlspNextEdit", function()
    local next_edit = require("mmlsp.next_edit")
    if not config.options.next_edit.enabled then
      notify("next edits are off (option next_edit.enabled)", vim.log.levels.WARN)
    elseif not next_edit._buffers[api.nvim_get_current_buf()] then
      notify("no mmlsp server is attached to this buffer", vim.log.levels.WARN)
    elseif not next_edit.request(nil, true) then
      notify("next edits are off in this buffer, or the server does not offer them", vim.log.levels.WARN)
    end
  end, { desc = "mmlsp: ask for a next-edit suggestion now" })
  create("MmlspNextEditToggle", function(args)
    local enabled = require("mmlsp.next_edit").toggle(nil, args.bang)
    if enabled ~= nil then
      notify("next edits " .. (enabled and "on" or "off"))
    end
  end, { bang = true, desc = "mmlsp: toggle next edits in this buffer (! for all)" })
end

return M
