-- Inline completion as ghost text (extmarks), for Neovim versions without a
-- built-in textDocument/inlineCompletion client.
--
-- Per attached buffer: typing in insert mode starts a debounce timer; when it
-- fires, textDocument/inlineCompletion is requested at the cursor. A reply for a
-- buffer state or cursor that is gone is dropped. The suggestion is drawn as
-- virtual text at the cursor (inline on 0.10+, overlay on older versions) and
-- virtual lines below it. Typing a character the suggestion starts with keeps
-- the rest on screen; any other edit, moving the cursor, leaving insert mode
-- (<Esc>) or the buffer dismisses it.
local compat = require("mmlsp.compat")
local bufstate = require("mmlsp.bufstate")
local config = require("mmlsp.config")
local keys = require("mmlsp.keys")

local api = vim.api
local uv = compat.uv

local M = {}

M.ns = api.nvim_create_namespace("mmlsp_ghost")
M.CLIENT_NAME = "mmlsp"

-- bufnr -> state
local buffers = {}
M._buffers = buffers

local function opts()
  return config.options.inline
end

local function state_of(bufnr)
  return bufstate.state_of(buffers, bufnr)
end

local function client_of(st)
  return bufstate.client_of(st, M.CLIENT_NAME)
end

local stop_timer, cancel_request = bufstate.stop_timer, bufstate.cancel_request

local function clear_marks(st)
  bufstate.clear_marks(st, M.ns)
end

--- Hides the suggestion of a buffer (and forgets it).
function M.clear(bufnr)
  local st = state_of(bufnr)
  if not st then
    return
  end
  st.suggestion = nil
  clear_marks(st)
end

--- Sends mmlsp/warm for the cursor of `st`'s buffer (a notification: no answer).
local function warm(st)
  if not st.enabled or not opts().enabled then
    return
  end
  local client = client_of(st)
  local win = api.nvim_get_current_win()
  if not client or api.nvim_win_get_buf(win) ~= st.bufnr then
    return
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding or "utf-16")
  compat.notify(client, "mmlsp/warm", params)
end

local function stop_all(st)
  stop_timer(st)
  cancel_request(st)
  M.clear(st.bufnr)
end

-- Splits text on "\n" (a trailing "\r" is dropped from each line).
local function split_lines(text)
  local lines = vim.split(text, "\n", { plain = true })
  for i, line in ipairs(lines) do
    lines[i] = line:gsub("\r$", "")
  end
  return lines
end

-- Draws st.suggestion at its anchor.
local function render(st)
  clear_marks(st)
  local s = st.suggestion
  if not s or s.text == "" or not api.nvim_buf_is_valid(st.bufnr) then
    return
  end
  local hl = opts().hl_group
  local lines = split_lines(s.text)
  local line = api.nvim_buf_get_lines(st.bufnr, s.row, s.row + 1, false)[1] or ""
  local col = math.min(s.col, #line)
  local first = lines[1]
  -- Text the suggestion replaces to the right of the cursor (say an auto-closed
  -- bracket) is not drawn twice.
  local replaced = line:sub(col + 1, s.end_col)
  if #lines == 1 and replaced ~= "" and first:sub(-#replaced) == replaced then
    first = first:sub(1, #first - #replaced)
  end
  local mark = { hl_mode = "combine", priority = 200 }
  if first ~= "" then
    if compat.has_010 then
      mark.virt_text = { { first, hl } }
      mark.virt_text_pos = "inline"
    else
      -- No inline virtual text before 0.10: overlay the suggestion at the cursor
      -- followed by the rest of the line, so that it reads like an insertion.
      local rest = line:sub(col + 1)
      mark.virt_text = { { first, hl } }
      if rest ~= "" then
        table.insert(mark.virt_text, { rest, "Normal" })
      end
      mark.virt_text_pos = "overlay"
    end
  end
  if #lines > 1 then
    local virt_lines = {}
    for i = 2, #lines do
      local text = lines[i]
      if i == #lines and compat.has_010 then
        -- The rest of the cursor line moves after the last suggested line.
        text = text .. line:sub(s.end_col + 1)
      end
      table.insert(virt_lines, { { text, hl } })
    end
    mark.virt_lines = virt_lines
  end
  if mark.virt_text or mark.virt_lines then
    st.mark_id = api.nvim_buf_set_extmark(st.bufnr, M.ns, s.row, col, mark)
  end
  st.shown_tick = api.nvim_buf_get_changedtick(st.bufnr)
end

-- Turns a server item into the suggestion to draw at the cursor, or nil.
local function to_suggestion(bufnr, item, encoding, row, col)
  local text = item.insertText
  if type(text) == "table" then
    text = text.value -- a StringValue snippet: shown and inserted as plain text
  end
  if type(text) ~= "string" or text == "" then
    return nil
  end
  text = text:gsub("\r\n", "\n")
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local end_col = col
  local range = item.range
  if type(range) == "table" and range.start then
    if range.start.line ~= row or range["end"].line ~= row then
      return nil -- only ranges on the cursor line can be drawn at the cursor
    end
    local start_col = compat.byte_col(line, range.start.character, encoding)
    end_col = compat.byte_col(line, range["end"].character, encoding)
    if start_col > col or end_col < col then
      return nil
    end
    -- What was typed since the range start must be the start of the suggestion.
    local typed = line:sub(start_col + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
  end
  if text == "" then
    return nil
  end
  local command = type(item.command) == "table" and item.command or nil
  return { text = text, row = row, col = col, end_col = end_col, command = command }
end

-- Tells the server that (part of) the suggestion was accepted: its item's command
-- (mmlsp.accepted {id}) with how much, `how` "whole", "word" or "line" and `chars`.
-- The server keeps acceptance statistics on this machine only.
local function report_accept(st, s, how, chars)
  local command = s.command
  if not command or type(command.command) ~= "string" then
    return
  end
  local client = client_of(st)
  if not client then
    return
  end
  local arguments = vim.deepcopy(command.arguments or {})
  if type(arguments[1]) == "table" then
    arguments[1].how = how
    arguments[1].chars = chars
  end
  compat.request(client, "workspace/executeCommand", {
    command = command.command,
    arguments = arguments,
  }, function() end, st.bufnr)
end

local function cursor_of(st)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= st.bufnr then
    return nil
  end
  local cursor = api.nvim_win_get_cursor(win)
  return cursor[1] - 1, cursor[2]
end

--- Asks the server for a suggestion at the cursor now.
function M.request(bufnr, manual)
  local st
  st, bufnr = state_of(bufnr)
  if not st or not st.enabled or not opts().enabled then
    return
  end
  stop_timer(st)
  cancel_request(st)
  if not compat.in_insert_mode() and not manual then
    return
  end
  local client = client_of(st)
  local row, col = cursor_of(st)
  if not client or not row then
    return
  end
  local win = api.nvim_get_current_win()
  local encoding = client.offset_encoding or "utf-16"
  local params = vim.lsp.util.make_position_params(win, encoding)
  -- 1: Invoked, 2: Automatic
  params.context = { triggerKind = manual and 1 or 2 }
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local request_id
  local ok, id = compat.request(client, "textDocument/inlineCompletion", params, function(err, result)
    if st.request_id == request_id then
      st.request_id = nil
    end
    if err or type(result) ~= "table" then
      return
    end
    -- Drop replies computed for a text or cursor that is gone.
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return
    end
    local now_row, now_col = cursor_of(st)
    if now_row ~= row or now_col ~= col or not compat.in_insert_mode() then
      return
    end
    local items = result.items or result
    local item = type(items) == "table" and items[1] or nil
    if type(item) ~= "table" then
      return
    end
    local suggestion = to_suggestion(bufnr, item, encoding, row, col)
    if suggestion then
      st.suggestion = suggestion
      render(st)
      if M.on_shown then
        M.on_shown(bufnr, suggestion)
      end
    end
  end, bufnr)
  if ok then
    request_id = id
    st.request_id = id
  end
end

-- Debounced request after typing.
local function schedule(st)
  if not opts().auto_trigger or not opts().enabled or not st.enabled then
    return
  end
  if opts().hide_during_completion and vim.fn.pumvisible() == 1 then
    return
  end
  st.timer = st.timer or uv.new_timer()
  st.timer:stop()
  st.timer:start(
    opts().debounce_ms,
    0,
    vim.schedule_wrap(function()
      if buffers[st.bufnr] == st and api.nvim_get_current_buf() == st.bufnr then
        M.request(st.bufnr, false)
      end
    end)
  )
end

-- If the user typed the start of the suggestion, keep showing the rest.
local function type_ahead(st)
  local s = st.suggestion
  if not s then
    return false
  end
  local row, col = cursor_of(st)
  if row ~= s.row or col <= s.col then
    return false
  end
  local line = api.nvim_buf_get_lines(st.bufnr, row, row + 1, false)[1] or ""
  local typed = line:sub(s.col + 1, col)
  if typed:find("\n", 1, true) or s.text:sub(1, #typed) ~= typed or #typed >= #s.text then
    return false
  end
  s.text = s.text:sub(#typed + 1)
  s.end_col = s.end_col + #typed
  s.col = col
  render(st)
  return true
end

local function on_text_changed(st)
  local tick = api.nvim_buf_get_changedtick(st.bufnr)
  if st.own_tick == tick then
    return -- our own edit (a partial accept); the rest is already drawn
  end
  cancel_request(st)
  if type_ahead(st) then
    return
  end
  M.clear(st.bufnr)
  schedule(st)
end

local function on_cursor_moved(st)
  local s = st.suggestion
  if not s then
    return
  end
  if api.nvim_buf_get_changedtick(st.bufnr) ~= st.shown_tick then
    return -- the text changed too: on_text_changed decides
  end
  local row, col = cursor_of(st)
  if row ~= s.row or col ~= s.col then
    stop_all(st)
  end
end

--- Whether a suggestion is shown in the buffer.
function M.is_visible(bufnr)
  local st = state_of(bufnr)
  return st ~= nil and st.suggestion ~= nil and st.suggestion.text ~= ""
end

--- The suggestion shown in the buffer: {text, row, col, end_col} (0-based), or nil.
function M.get(bufnr)
  local st = state_of(bufnr)
  return st and st.suggestion
end

-- The next word of a suggestion: leading blanks, then a run of word characters
-- or of other non-blank characters; a leading newline counts on its own.
local function next_word(text)
  local nl = text:match("^\r?\n[ \t]*")
  if nl then
    return nl
  end
  return text:match("^[ \t]*[%w_]+") or text:match("^[ \t]*[^%w_%s]+") or text:match("^[ \t]+")
    or text
end

-- The rest of the suggestion's current line, with its newline.
local function next_line(text)
  local nl = text:find("\n", 1, true)
  if nl == 1 then
    local second = text:find("\n", 2, true)
    return second and text:sub(1, second) or text
  end
  return nl and text:sub(1, nl) or text
end

-- Inserts `piece` (a prefix of the suggestion) at the anchor and moves the cursor
-- after it. The whole suggestion also replaces what its range covered.
local function insert(st, s, piece, whole)
  local lines = split_lines(piece)
  local end_col = whole and s.end_col or s.col
  api.nvim_buf_set_text(st.bufnr, s.row, s.col, s.row, end_col, lines)
  local row, col
  if #lines == 1 then
    row, col = s.row, s.col + #lines[1]
  else
    row, col = s.row + #lines - 1, #lines[#lines]
  end
  api.nvim_win_set_cursor(0, { row + 1, col })
  return row, col
end

local function accept_part(bufnr, pick)
  local st
  st, bufnr = state_of(bufnr)
  if not st or not st.suggestion then
    return false
  end
  stop_timer(st)
  cancel_request(st)
  local s = st.suggestion
  local piece = pick and pick(s.text) or s.text
  if piece == "" then
    piece = s.text
  end
  if piece == s.text then
    st.suggestion = nil
    clear_marks(st)
    insert(st, s, piece, true)
    st.own_tick = nil -- a full accept: the next keystroke asks again as usual
    report_accept(st, s, "whole", #piece)
    return true
  end
  local replaced = s.end_col - s.col
  local row, col = insert(st, s, piece, false)
  report_accept(st, s, pick == next_word and "word" or "line", #piece)
  st.suggestion = {
    text = s.text:sub(#piece + 1),
    row = row,
    col = col,
    end_col = col + replaced,
    command = s.command,
  }
  render(st)
  st.own_tick = api.nvim_buf_get_changedtick(bufnr)
  return true
end

--- Accepts the whole suggestion. Returns whether there was one.
function M.accept(bufnr)
  return accept_part(bufnr, nil)
end

--- Accepts the next word of the suggestion.
function M.accept_word(bufnr)
  return accept_part(bufnr, next_word)
end

--- Accepts the rest of the suggestion's current line.
function M.accept_line(bufnr)
  return accept_part(bufnr, next_line)
end

--- Hides the suggestion and cancels any request in flight.
function M.dismiss(bufnr)
  local st = state_of(bufnr)
  if not st then
    return false
  end
  local had = st.suggestion ~= nil
  stop_all(st)
  return had
end

-- Keys of the ghost text: first in each key's chain (mmlsp.keys), so that a shown
-- completion keeps <Tab> even when a next edit is shown too.
local function map(bufnr, lhs, name)
  keys.map(bufnr, "i", lhs, "inline", name, function()
    if name == "trigger" then
      return "<Cmd>lua require('mmlsp.inline').request(nil, true)<CR>"
    end
    if M.is_visible(bufnr) then
      return "<Cmd>lua require('mmlsp.inline')." .. name .. "()<CR>"
    end
    return nil
  end)
end

-- Earlier name of mmlsp.keys._fallback (mappings made before a reload may call it).
M._fallback = keys._fallback

--- Sets up ghost text for a buffer served by `client`. Idempotent.
function M.attach(client, bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  local st = buffers[bufnr]
  if st then
    st.client_id = client and client.id or st.client_id
    return
  end
  st = { bufnr = bufnr, client_id = client and client.id, enabled = true }
  buffers[bufnr] = st
  local group = api.nvim_create_augroup("mmlsp_inline_" .. bufnr, { clear = true })
  local on = bufstate.autocmd(group, buffers, st)
  on({ "TextChangedI", "TextChangedP" }, on_text_changed)
  on("CursorMovedI", on_cursor_moved)
  -- The user looks at this buffer (entered it, or rests the cursor): let the server
  -- prefill its prompt there, so that the first suggestion does not wait for it.
  on({ "BufEnter", "CursorHold", "InsertEnter" }, warm)
  on({ "InsertLeave", "BufLeave" }, stop_all)
  api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
  local keymaps = config.options.keymaps or {}
  map(bufnr, keymaps.accept, "accept")
  map(bufnr, keymaps.accept_word, "accept_word")
  map(bufnr, keymaps.accept_line, "accept_line")
  map(bufnr, keymaps.dismiss, "dismiss")
  map(bufnr, keymaps.trigger, "trigger")
end

--- Stops ghost text in a buffer.
function M.detach(bufnr)
  local st = state_of(bufnr)
  if not st then
    return
  end
  stop_all(st)
  if st.timer then
    st.timer:close()
    st.timer = nil
  end
  buffers[st.bufnr] = nil
  pcall(api.nvim_del_augroup_by_name, "mmlsp_inline_" .. st.bufnr)
  keys.unmap(st.bufnr, "inline")
end

--- Turns ghost text on or off for a buffer (all buffers when `all`).
function M.toggle(bufnr, all)
  local targets = {}
  if all then
    targets = vim.tbl_values(buffers)
  else
    targets = { (state_of(bufnr)) }
  end
  local enabled
  for _, st in ipairs(targets) do
    st.enabled = not st.enabled
    enabled = st.enabled
    if not st.enabled then
      stop_all(st)
    end
  end
  return enabled
end

--- Shows `text` as the suggestion at the cursor, as if the server had sent it
--- (for tests and for other sources of suggestions).
function M.show(bufnr, text)
  local st
  st, bufnr = state_of(bufnr)
  if not st then
    return false
  end
  local row, col = cursor_of(st)
  if not row then
    return false
  end
  st.suggestion = { text = text, row = row, col = col, end_col = col }
  render(st)
  return true
end

M._next_word = next_word
M._next_line = next_line

return M
