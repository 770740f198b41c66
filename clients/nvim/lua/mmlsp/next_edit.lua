-- Next-edit suggestions: the follow-up edit the server predicts anywhere in the lines
-- around the cursor after the user's recent edits, drawn in place.
--
-- Protocol (the server's mmlsp/features/next_edit.py; Copilot's textDocument/
-- copilotInlineEdit under other names):
--   request      mmlsp/nextEdit {textDocument = {uri, version}, position}
--                -> {edits = {{text, textDocument = {uri, version}, range, command}}}
--                the edits of one prediction in document order; {} = nothing to show
--   notification mmlsp/nextEditShown {id}: the prediction is on screen
--   command      mmlsp.acceptNextEdit (each edit's command), after applying it
--
-- Per attached buffer: an edit (in insert or normal mode) starts a debounce timer;
-- when it fires, or when the cursor moves to another line after an edit, or right
-- after an accepted next edit (chained), mmlsp/nextEdit is requested at the cursor.
-- A newer request cancels the one in flight ($/cancelRequest), and a reply for an
-- older buffer state (changedtick, LSP version) is dropped. The prediction is drawn
-- with extmarks: the text it removes highlighted (MmlspNextEditDelete), the text it
-- inserts as virtual text (inline on 0.10+, overlaid on 0.7; MmlspNextEditInsert),
-- extra inserted lines as virtual lines; when the cursor is not on its lines, a hint
-- at the cursor line says where it is (MmlspNextEditHint). The accept key applies it
-- when the cursor is on its lines, otherwise first moves the cursor there.
local compat = require("mmlsp.compat")
local bufstate = require("mmlsp.bufstate")
local config = require("mmlsp.config")
local keys = require("mmlsp.keys")

local api = vim.api
local uv = compat.uv

local M = {}

M.ns = api.nvim_create_namespace("mmlsp_next_edit")
M.CLIENT_NAME = "mmlsp"
M.REQUEST = "mmlsp/nextEdit"
M.SHOWN = "mmlsp/nextEditShown"
M.ACCEPT = "mmlsp.acceptNextEdit"
M.HL_DELETE = "MmlspNextEditDelete"
M.HL_INSERT = "MmlspNextEditInsert"
M.HL_HINT = "MmlspNextEditHint"

local METHOD_NOT_FOUND = -32601
local REQUEST_CANCELLED = -32800
local CONTENT_MODIFIED = -32801

-- bufnr -> state
local buffers = {}
M._buffers = buffers

local function opts()
  return config.options.next_edit or {}
end

local function state_of(bufnr)
  return bufstate.state_of(buffers, bufnr)
end

local function client_of(st)
  return bufstate.client_of(st, M.CLIENT_NAME)
end

local function tick_of(st)
  return api.nvim_buf_get_changedtick(st.bufnr)
end

--- The window showing the buffer: the current one, else nil.
local function window_of(st)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= st.bufnr then
    return nil
  end
  return win
end

local function cursor_row(st)
  local win = window_of(st)
  if not win then
    return nil
  end
  return api.nvim_win_get_cursor(win)[1] - 1
end

local stop_timer, cancel_request = bufstate.stop_timer, bufstate.cancel_request

local function clear_marks(st)
  bufstate.clear_marks(st, M.ns)
end

local function forget(st)
  st.prediction = nil
  st.jumped = false
  clear_marks(st)
end

-- Splits text on "\n" (a "\r" before it is dropped).
local function split_lines(text)
  local lines = vim.split(text, "\n", { plain = true })
  for i, line in ipairs(lines) do
    lines[i] = line:gsub("\r$", "")
  end
  return lines
end

local function buf_line(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
end

-- An LSP position as (row, byte col), clamped to the buffer.
local function to_bytes(bufnr, pos, encoding)
  local count = api.nvim_buf_line_count(bufnr)
  local row = pos.line
  if row >= count then
    local last = count - 1
    return last, #buf_line(bufnr, last)
  end
  return row, compat.byte_col(buf_line(bufnr, row), pos.character, encoding)
end

local function valid_range(range)
  return type(range) == "table"
    and type(range.start) == "table"
    and type(range["end"]) == "table"
    and type(range.start.line) == "number"
    and type(range.start.character) == "number"
    and type(range["end"].line) == "number"
    and type(range["end"].character) == "number"
end

-- The server's items as a prediction to draw: nil when one is unusable.
local function to_prediction(bufnr, items, encoding)
  local edits = {}
  local command
  for _, item in ipairs(items) do
    if type(item) ~= "table" or type(item.text) ~= "string" or not valid_range(item.range) then
      return nil
    end
    local sr, sc = to_bytes(bufnr, item.range.start, encoding)
    local er, ec = to_bytes(bufnr, item.range["end"], encoding)
    if er < sr or (er == sr and ec < sc) then
      return nil
    end
    table.insert(edits, { text = item.text:gsub("\r\n", "\n"), sr = sr, sc = sc, er = er, ec = ec, item = item })
    if type(item.command) == "table" and command == nil then
      command = item.command
    end
  end
  if #edits == 0 then
    return nil
  end
  local first, last = math.huge, -1
  for _, e in ipairs(edits) do
    first = math.min(first, e.sr)
    last = math.max(last, e.er)
  end
  local arg = command and type(command.arguments) == "table" and command.arguments[1]
  local id = type(arg) == "table" and arg.id or nil
  return { edits = edits, command = command, id = id, first_row = first, last_row = last }
end

--- Whether the cursor is on the lines of the prediction (the accept key applies it
--- there; elsewhere it first moves the cursor).
local function is_near(st)
  local p = st.prediction
  local row = cursor_row(st)
  return p ~= nil and row ~= nil and row >= p.first_row and row <= p.last_row
end

local function key_name(lhs)
  return lhs and lhs ~= "" and lhs or nil
end

-- 0.7: no inline virtual text, so each line with insertions gets one overlay from
-- its first insertion: the inserted text, then the rest of the line (removed text
-- highlighted), so that it reads like the edited line.
local function overlay_line(line, inserts, deletes)
  table.sort(inserts, function(a, b)
    return a.col < b.col
  end)
  local chunks = {}
  local function emit(text, hl)
    if text == "" then
      return
    end
    local last = chunks[#chunks]
    if last and last[2] == hl then
      last[1] = last[1] .. text
    else
      table.insert(chunks, { text, hl })
    end
  end
  local function hl_at(col)
    for _, d in ipairs(deletes) do
      if col >= d[1] and col < d[2] then
        return M.HL_DELETE
      end
    end
    return "Normal"
  end
  local i = 1
  for col = inserts[1].col, #line do
    while inserts[i] and inserts[i].col == col do
      emit(inserts[i].text, M.HL_INSERT)
      i = i + 1
    end
    if col < #line then
      emit(line:sub(col + 1, col + 1), hl_at(col))
    end
  end
  return chunks
end

local function set_mark(st, row, col, mark)
  local ok, id = pcall(api.nvim_buf_set_extmark, st.bufnr, M.ns, row, col, mark)
  return ok and id or nil
end

-- Draws st.prediction, and the hint at the cursor line when the cursor is away.
local function render(st)
  clear_marks(st)
  local p = st.prediction
  if not p or not api.nvim_buf_is_valid(st.bufnr) then
    return
  end
  local bufnr = st.bufnr
  local count = api.nvim_buf_line_count(bufnr)
  local overlays = {} -- 0.7: row -> { inserts = {}, deletes = {} }
  local function overlay(row)
    overlays[row] = overlays[row] or { inserts = {}, deletes = {} }
    return overlays[row]
  end
  for _, e in ipairs(p.edits) do
    if e.er > e.sr or e.ec > e.sc then
      set_mark(st, e.sr, e.sc, {
        end_row = e.er,
        end_col = e.ec,
        hl_group = M.HL_DELETE,
        hl_eol = e.er > e.sr,
        priority = 250,
      })
      if not compat.has_010 then
        for row = e.sr, e.er do
          local from = row == e.sr and e.sc or 0
          local to = row == e.er and e.ec or #buf_line(bufnr, row) + 1
          table.insert(overlay(row).deletes, { from, to })
        end
      end
    end
    local lines = split_lines(e.text)
    if e.text == "" then
      -- A deletion only: the highlight says it all.
    elseif #lines > 1 and lines[#lines] == "" and e.sc == 0 and e.ec == 0 then
      -- Whole lines: drawn above the line they go before (or below the last one).
      local virt_lines = {}
      for i = 1, #lines - 1 do
        table.insert(virt_lines, { { lines[i], M.HL_INSERT } })
      end
      if e.er < count then
        set_mark(st, e.er, 0, { virt_lines = virt_lines, virt_lines_above = true })
      else
        set_mark(st, count - 1, 0, { virt_lines = virt_lines })
      end
    else
      local first = lines[1]
      if first ~= "" then
        if compat.has_010 then
          set_mark(st, e.er, e.ec, {
            virt_text = { { first, M.HL_INSERT } },
            virt_text_pos = "inline",
            hl_mode = "combine",
            priority = 250,
          })
        else
          table.insert(overlay(e.er).inserts, { col = e.ec, text = first })
        end
      end
      if #lines > 1 then
        local virt_lines = {}
        for i = 2, #lines do
          table.insert(virt_lines, { { lines[i], M.HL_INSERT } })
        end
        set_mark(st, e.er, e.ec, { virt_lines = virt_lines })
      end
    end
  end
  for row, o in pairs(overlays) do
    if #o.inserts > 0 then
      local chunks = overlay_line(buf_line(bufnr, row), o.inserts, o.deletes)
      set_mark(st, row, o.inserts[1].col, {
        virt_text = chunks,
        virt_text_pos = "overlay",
        hl_mode = "combine",
        priority = 250,
      })
    end
  end
  -- Away from the cursor: say where, and which key goes there.
  local row = cursor_row(st)
  if row ~= nil and not is_near(st) then
    local target = p.first_row
    local arrow = target < row and "↑" or "↓"
    local key = key_name(opts().jump) or key_name(opts().accept)
    local text = string.format("%s next edit: line %d", arrow, target + 1)
    if key then
      text = text .. ", " .. key .. " to jump"
    end
    st.hint_mark = set_mark(st, row, 0, { virt_text = { { "  " .. text, M.HL_HINT } }, virt_text_pos = "eol" })
  end
end

local function notify_shown(st, client, p)
  if p.id ~= nil and st.shown_id == p.id then
    return -- the same prediction again (its rest after the user typed part of it)
  end
  st.shown_id = p.id
  st.stats.shown = st.stats.shown + 1
  if p.id ~= nil then
    compat.notify(client, M.SHOWN, { id = p.id })
  else
    compat.notify(client, M.SHOWN, { item = { command = p.command } })
  end
end

--- Asks the server for a next edit at the cursor now. `manual`: asked for by the
--- user (a dismissed state is asked for again).
function M.request(bufnr, manual)
  local st
  st, bufnr = state_of(bufnr)
  if not st or not st.enabled or not opts().enabled or st.unsupported then
    return false
  end
  stop_timer(st)
  cancel_request(st)
  local client = client_of(st)
  local win = window_of(st)
  if not client or not win then
    return false
  end
  local tick = tick_of(st)
  if not manual and st.dismissed_tick == tick then
    return false
  end
  local encoding = client.offset_encoding or "utf-16"
  local params = vim.lsp.util.make_position_params(win, encoding)
  -- The version the server has once the pending changes are sent (a request sends
  -- them first).
  local version = vim.lsp.util.buf_versions[bufnr]
  params.textDocument.version = version
  local uri = params.textDocument.uri
  st.seq = st.seq + 1
  local seq = st.seq
  st.stats.requests = st.stats.requests + 1
  local request_id
  local ok, id = compat.request(client, M.REQUEST, params, function(err, result)
    if st.request_id == request_id then
      st.request_id = nil
    end
    if buffers[bufnr] ~= st then
      return
    end
    if err then
      if err.code == METHOD_NOT_FOUND then
        st.unsupported = true -- an mmlsp without next edits: stop asking
      end
      if err.code ~= REQUEST_CANCELLED and err.code ~= CONTENT_MODIFIED then
        st.stats.errors = st.stats.errors + 1
        st.last_error = err.message or vim.inspect(err)
      end
      return
    end
    st.stats.replies = st.stats.replies + 1
    local items = type(result) == "table" and result.edits or nil
    -- Drop replies for a request that was superseded or a text that is gone.
    local stale = seq ~= st.seq or not api.nvim_buf_is_valid(bufnr) or tick_of(st) ~= tick
    for _, item in ipairs(type(items) == "table" and items or {}) do
      local doc = type(item) == "table" and item.textDocument or nil
      if type(doc) == "table" then
        if (doc.uri ~= nil and doc.uri ~= uri) or (type(doc.version) == "number" and doc.version ~= version) then
          stale = true
        end
      end
    end
    if stale then
      st.stats.stale = st.stats.stale + 1
      return
    end
    if type(items) ~= "table" or #items == 0 then
      st.stats.empty = st.stats.empty + 1
      forget(st)
      return
    end
    local prediction = to_prediction(bufnr, items, encoding)
    if not prediction then
      st.stats.invalid = st.stats.invalid + 1
      return
    end
    prediction.tick = tick
    st.prediction = prediction
    st.jumped = false
    render(st)
    notify_shown(st, client, prediction)
    if M.on_shown then
      M.on_shown(bufnr, prediction)
    end
  end, bufnr)
  if ok then
    request_id = id
    st.request_id = id
  end
  return ok
end

-- Debounced request after an edit or a move to another line.
local function schedule(st)
  if not opts().auto_trigger or not opts().enabled or not st.enabled or st.unsupported then
    return
  end
  st.timer = st.timer or uv.new_timer()
  st.timer:stop()
  st.timer:start(
    opts().debounce_ms or 400,
    0,
    vim.schedule_wrap(function()
      if buffers[st.bufnr] == st and api.nvim_get_current_buf() == st.bufnr then
        M.request(st.bufnr, false)
      end
    end)
  )
end

local function on_text_changed(st)
  local tick = tick_of(st)
  if st.seen_tick == tick then
    return -- TextChanged after TextChangedI for the same change
  end
  st.seen_tick = tick
  if st.own_tick == tick then
    return -- our own edit (an accepted next edit): the chained request follows
  end
  st.edit_tick = tick
  st.dismissed_tick = nil
  st.last_row = cursor_row(st)
  cancel_request(st)
  forget(st)
  schedule(st)
end

local function on_cursor_moved(st)
  local row = cursor_row(st)
  if row == nil or row == st.last_row then
    return
  end
  st.last_row = row
  if st.prediction then
    render(st) -- the hint follows the cursor
    return
  end
  -- The first move to another line after an edit asks again there.
  local tick = tick_of(st)
  if st.edit_tick == tick and st.moved_tick ~= tick and st.dismissed_tick ~= tick then
    st.moved_tick = tick
    schedule(st)
  end
end

--- Whether a next edit is shown in the buffer.
function M.is_visible(bufnr)
  local st = state_of(bufnr)
  return st ~= nil and st.prediction ~= nil
end

--- The shown prediction: {edits = {{text, sr, sc, er, ec}}, id, first_row,
--- last_row} (0-based rows, byte columns), or nil.
function M.get(bufnr)
  local st = state_of(bufnr)
  return st and st.prediction
end

--- Counters of a buffer: requests, replies, errors, stale, empty, invalid, shown,
--- accepted; and last_error.
function M.stats(bufnr)
  local st = state_of(bufnr)
  if not st then
    return nil
  end
  local out = vim.deepcopy(st.stats)
  out.last_error = st.last_error
  out.unsupported = st.unsupported
  return out
end

--- Moves the cursor to the start of the shown next edit. Returns whether there was one.
function M.jump(bufnr)
  local st
  st, bufnr = state_of(bufnr)
  local p = st and st.prediction
  local win = st and window_of(st)
  if not p or not win then
    return false
  end
  local e = p.edits[1]
  api.nvim_win_set_cursor(win, { e.sr + 1, e.sc })
  st.last_row = e.sr
  st.jumped = true
  render(st)
  return true
end

-- Breaks the undo sequence, so that an accepted next edit is one undo step of its own.
local function break_undo()
  pcall(vim.cmd, "let &g:undolevels = &g:undolevels")
end

--- Applies the shown next edit (or, when the cursor is away from it, moves the
--- cursor there first). Returns whether there was one.
function M.accept(bufnr)
  local st
  st, bufnr = state_of(bufnr)
  local p = st and st.prediction
  if not p then
    return false
  end
  if not is_near(st) then
    return M.jump(bufnr)
  end
  stop_timer(st)
  cancel_request(st)
  forget(st)
  if tick_of(st) ~= p.tick then
    return false -- the text changed under it
  end
  local client = client_of(st)
  if not client then
    return false
  end
  local encoding = client.offset_encoding or "utf-16"
  local edits = {}
  for _, e in ipairs(p.edits) do
    table.insert(edits, { range = e.item.range, newText = e.text })
  end
  -- Where the last edit ends once applied: a mark at its end moves with the text.
  local last = p.edits[#p.edits]
  local end_mark = set_mark(st, last.er, last.ec, { right_gravity = true })
  break_undo()
  vim.lsp.util.apply_text_edits(edits, bufnr, encoding)
  break_undo()
  st.own_tick = tick_of(st)
  st.seen_tick = nil
  if end_mark then
    local pos = api.nvim_buf_get_extmark_by_id(bufnr, M.ns, end_mark, {})
    clear_marks(st)
    local win = window_of(st)
    if win and pos and pos[1] then
      local line = buf_line(bufnr, pos[1])
      local col = math.min(pos[2], #line)
      if not compat.in_insert_mode() and col > 0 and col >= #line then
        col = #line - 1 -- normal mode: on the last character
      end
      pcall(api.nvim_win_set_cursor, win, { pos[1] + 1, math.max(col, 0) })
      st.last_row = pos[1]
    end
  end
  st.stats.accepted = st.stats.accepted + 1
  local command = p.command
  local function chain()
    if buffers[bufnr] == st then
      M.request(bufnr, false)
    end
  end
  if type(command) == "table" and type(command.command) == "string" then
    local params = { command = command.command, arguments = command.arguments }
    local ok = compat.request(client, "workspace/executeCommand", params, function()
      vim.schedule(chain) -- the next one right away (chained suggestions)
    end, bufnr)
    if ok then
      return true
    end
  end
  chain()
  return true
end

--- Hides the next edit and cancels any request in flight; the same text is not
--- asked about again until it changes. Returns whether one was shown.
function M.dismiss(bufnr)
  local st = state_of(bufnr)
  if not st then
    return false
  end
  local had = st.prediction ~= nil
  stop_timer(st)
  cancel_request(st)
  if had then
    st.dismissed_tick = tick_of(st)
  end
  forget(st)
  return had
end

local function on_leave(st)
  if st.prediction then
    M.dismiss(st.bufnr)
  end
end

local function map_keys(bufnr)
  local o = opts()
  local function chain(lhs, name, handler)
    for _, mode in ipairs({ "n", "i" }) do
      keys.map(bufnr, mode, lhs, "next_edit", name, handler)
    end
  end
  chain(o.accept, "next edit accept", function()
    if M.is_visible(bufnr) then
      return "<Cmd>lua require('mmlsp.next_edit').accept()<CR>"
    end
  end)
  chain(o.jump, "next edit jump", function()
    if M.is_visible(bufnr) then
      return "<Cmd>lua require('mmlsp.next_edit').jump()<CR>"
    end
  end)
  chain(o.dismiss, "next edit dismiss", function(fall)
    if M.is_visible(bufnr) then
      -- Hide it, then let the key do its usual work (<Esc> leaves insert mode).
      return "<Cmd>lua require('mmlsp.next_edit').dismiss()<CR>" .. fall()
    end
  end)
end

--- Sets up next edits for a buffer served by `client`. Idempotent.
function M.attach(client, bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  if not opts().enabled then
    return
  end
  local st = buffers[bufnr]
  if st then
    st.client_id = client and client.id or st.client_id
    return
  end
  st = {
    bufnr = bufnr,
    client_id = client and client.id,
    enabled = true,
    seq = 0,
    stats = { requests = 0, replies = 0, errors = 0, stale = 0, empty = 0, invalid = 0, shown = 0, accepted = 0 },
  }
  buffers[bufnr] = st
  local group = api.nvim_create_augroup("mmlsp_next_edit_" .. bufnr, { clear = true })
  local on = bufstate.autocmd(group, buffers, st)
  on({ "TextChanged", "TextChangedI", "TextChangedP" }, on_text_changed)
  on({ "CursorMoved", "CursorMovedI" }, on_cursor_moved)
  on({ "InsertLeave", "BufLeave" }, on_leave)
  api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
  map_keys(bufnr)
end

--- Stops next edits in a buffer.
function M.detach(bufnr)
  local st = state_of(bufnr)
  if not st then
    return
  end
  stop_timer(st)
  cancel_request(st)
  forget(st)
  if st.timer then
    st.timer:close()
    st.timer = nil
  end
  buffers[st.bufnr] = nil
  pcall(api.nvim_del_augroup_by_name, "mmlsp_next_edit_" .. st.bufnr)
  keys.unmap(st.bufnr, "next_edit")
end

--- Turns next edits on or off for a buffer (all buffers when `all`).
function M.toggle(bufnr, all)
  local targets = all and vim.tbl_values(buffers) or { (state_of(bufnr)) }
  local enabled
  for _, st in ipairs(targets) do
    st.enabled = not st.enabled
    enabled = st.enabled
    if not st.enabled then
      M.dismiss(st.bufnr)
    end
  end
  return enabled
end

M._overlay_line = overlay_line

return M
