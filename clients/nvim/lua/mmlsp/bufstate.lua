-- What the ghost text (inline.lua) and next edits (next_edit.lua) both do to their
-- per-buffer state: stop its debounce timer, cancel its request in flight, clear its
-- extmarks. The state is a table with `timer`, `client_id`, `request_id` and `bufnr`.
local M = {}

local api = vim.api
local compat = require("mmlsp.compat")

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
