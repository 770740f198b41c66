-- Shims over the Neovim API differences between 0.7.2 and 0.11.x.
local M = {}

local api = vim.api

M.uv = vim.uv or vim.loop
M.has_011 = vim.fn.has("nvim-0.11") == 1
M.has_010 = vim.fn.has("nvim-0.10") == 1

-- Calls a client method: 0.11 wants `client:method(...)` and warns on
-- `client.method(...)`; 0.7 only has the latter.
function M.call(client, method, ...)
  if M.has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

function M.request(client, method, params, handler, bufnr)
  return M.call(client, "request", method, params, handler, bufnr)
end

function M.cancel(client, id)
  if client and id then
    pcall(M.call, client, "cancel_request", id)
  end
end

function M.notify(client, method, params)
  return M.call(client, "notify", method, params)
end

--- Clients named `name` attached to `bufnr` (every client when bufnr is nil).
function M.clients(name, bufnr)
  local all
  if vim.lsp.get_clients then
    all = vim.lsp.get_clients({ bufnr = bufnr })
  elseif bufnr then
    all = vim.tbl_values(vim.lsp.buf_get_clients(bufnr))
  else
    all = vim.lsp.get_active_clients()
  end
  local found = {}
  for _, client in ipairs(all) do
    if client.name == name then
      table.insert(found, client)
    end
  end
  return found
end

function M.is_stopped(client)
  if M.has_011 then
    return client:is_stopped()
  end
  return client.is_stopped()
end

--- The byte column of an LSP `character` on a line of text.
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if M.has_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  elseif encoding == "utf-32" then
    ok, col = pcall(vim.str_byteindex, line, character)
  else
    ok, col = pcall(vim.str_byteindex, line, character, true)
  end
  if not ok or col == nil then
    return #line
  end
  return math.min(col, #line)
end

--- The LSP `character` of a byte column on a line of text.
function M.character(line, col, encoding)
  if encoding == "utf-8" then
    return col
  end
  local ok, utf32, utf16
  if M.has_011 then
    ok, utf16 = pcall(vim.str_utfindex, line, encoding, col, false)
    utf32 = utf16
  else
    ok, utf32, utf16 = pcall(vim.str_utfindex, line, col)
  end
  if not ok then
    return col
  end
  if encoding == "utf-32" then
    return utf32
  end
  return utf16
end

function M.in_insert_mode()
  local mode = api.nvim_get_mode().mode
  return mode:sub(1, 1) == "i"
end

--- Walks up from `path` to the first directory holding one of `markers`.
function M.find_root(path, markers)
  local dir = vim.fn.fnamemodify(path ~= "" and path or vim.fn.getcwd(), ":p")
  if M.uv.fs_stat(dir) == nil or vim.fn.isdirectory(dir) == 0 then
    dir = vim.fn.fnamemodify(dir, ":h")
  end
  dir = dir:gsub("/$", "")
  while dir and dir ~= "" do
    for _, marker in ipairs(markers or {}) do
      if M.uv.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      break
    end
    dir = parent
  end
  return nil
end

return M
