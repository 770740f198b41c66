-- What the ghost text (inline.lua) and next edits (next_edit.lua) both do with their
-- per-buffer state: find it, find its client, stop its debounce timer, cancel its
-- request in flight, clear its extmarks. The state is a table with `timer`, `client_id`, `request_id` and `bufnr`.
local M = {}

local api = vim.api
local compat = require("mmlsp.compat")

-- The state of `bufnr` (0 or nil: the current buffer) in `buffers`, and the number.
function M.state_of(buffers, bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  return buffers[bufnr], bufnr
end

-- The running client named `name` for the state's buffer; the client may have been
-- restarted, so a stopped one is replaced by the buffer's current one.
function M.client_of(st, name)
  local client = st.client_id and vim.lsp.get_client_by_id(st.client_id)
  if client and not compat.is_stopped(client) then
    return client
  end
  client = compat.clients(name, st.bufnr)[1]
  st.client_id = client and client.id or nil
  return client
end

-- `on(events, fn)`: an autocmd on the state's buffer in `group` that calls `fn(st)`
-- while `st` is still the buffer's state in `buffers`.
function M.autocmd(group, buffers, st)
  return function(events, fn)
    api.nvim_create_autocmd(events, {
      group = group,
      buffer = st.bufnr,
      callback = function()
        if buffers[st.bufnr] == st then
          fn(st)
        end
      end,
    })
  end
end

function M.stop_timer(st)
  if st.timer then
    st.timer:stop()
  end
end

function M.cancel_request(st)
  if st.request_id then
    local client = st.client_id and vim.lsp.get_client_by_id(st.client_id)
    compat.cancel(client, st.request_id)
    st.request_id = nil
  end
end

function M.clear_marks(st, ns)
  if api.nvim_buf_is_valid(st.bufnr) then
    api.nvim_buf_clear_namespace(st.bufnr, ns, 0, -1)
  end
end

return M
