-- mmlsp for Neovim: starts the mmlsp language server for the configured
-- filetypes and shows its inline completions as ghost text. Diagnostics, code
-- actions and hover go through Neovim's own LSP client.
--
--   require("mmlsp").setup({ settings = { model = "Qwen/Qwen2.5-Coder-0.5B" } })
local compat = require("mmlsp.compat")
local config = require("mmlsp.config")
local inline = require("mmlsp.inline")
local next_edit = require("mmlsp.next_edit")
local progress = require("mmlsp.progress")

local api = vim.api

local M = {}

M.NAME = "mmlsp"
M.inline = inline
M.next_edit = next_edit
M.progress = progress

-- The client started by setup() on Neovim 0.7, where vim.lsp.start is missing.
local legacy_client_id = nil

local function has_normal_map(maps, lhs)
  for _, m in ipairs(maps) do
    if m.lhs == lhs then
      return true
    end
  end
  return false
end

--- Maps `K` to LSP hover in `bufnr` on Neovim before 0.10, which has no
--- default for it (`K` runs 'keywordprg', pydoc for Python, instead). Only
--- when the option map_hover is on and nothing else maps `K` there, globally
--- or in the buffer. Returns true when it mapped it.
function M.map_hover(bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  if not config.options.map_hover or compat.has_010 or not api.nvim_buf_is_valid(bufnr) then
    return false
  end
  if has_normal_map(api.nvim_buf_get_keymap(bufnr, "n"), "K") or has_normal_map(api.nvim_get_keymap("n"), "K") then
    return false
  end
  vim.keymap.set("n", "K", function()
    vim.lsp.buf.hover()
  end, { buffer = bufnr, silent = true, desc = "mmlsp: LSP hover" })
  return true
end

--- on_attach for mmlsp clients, however they were started (setup(),
--- nvim-lspconfig or vim.lsp.enable()): ghost text, next edits and keymaps for the
--- buffer. Ghost text first: its keys come first where both use one (<Tab>).
function M.on_attach(client, bufnr)
  if client and client.name ~= M.NAME then
    return
  end
  inline.attach(client, bufnr)
  next_edit.attach(client, bufnr)
  progress.attach(client)
  M.map_hover(bufnr)
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  -- Neovim before 0.12 does not announce it; the ghost text here handles it.
  caps.textDocument.inlineCompletion = { dynamicRegistration = false }
  if config.options.capabilities then
    caps = vim.tbl_deep_extend("force", caps, config.options.capabilities)
  end
  return caps
end

--- The client configuration (vim.lsp.start / vim.lsp.start_client) for a buffer.
function M.client_config(bufnr)
  local o = config.options
  local path = api.nvim_buf_get_name(bufnr or 0)
  local root = compat.find_root(path, o.root_markers) or vim.fn.getcwd()
  local cfg = {
    name = M.NAME,
    cmd = config.command(o.cmd, o.settings),
    cmd_env = o.cmd_env,
    root_dir = root,
    init_options = config.init_options(o.settings),
    capabilities = capabilities(),
    on_attach = function(client, b)
      M.on_attach(client, b)
      if o.on_attach then
        o.on_attach(client, b)
      end
    end,
  }
  if o.settings and not vim.tbl_isempty(o.settings) then
    -- Answers workspace/configuration for section "mmlsp".
    cfg.settings = { mmlsp = config.init_options(o.settings) }
  end
  return cfg
end

--- Starts (or reuses) the server and attaches it to `bufnr`.
function M.start(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local cfg = M.client_config(bufnr)
  if vim.lsp.start then
    -- One server for every root: it holds the model in memory.
    return vim.lsp.start(cfg, {
      bufnr = bufnr,
      reuse_client = function(client, c)
        return client.name == c.name
      end,
    })
  end
  local client = legacy_client_id and vim.lsp.get_client_by_id(legacy_client_id)
  if not client or compat.is_stopped(client) then
    legacy_client_id = vim.lsp.start_client(cfg)
  end
  if legacy_client_id then
    vim.lsp.buf_attach_client(bufnr, legacy_client_id)
  end
  return legacy_client_id
end

--- The mmlsp client for a buffer (any running one when bufnr is nil).
function M.get_client(bufnr)
  if bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  return compat.clients(M.NAME, bufnr)[1]
end

--- Stops the server; with `restart`, starts it again for the attached buffers.
function M.stop(restart)
  local buffers = {}
  for _, client in ipairs(compat.clients(M.NAME)) do
    for b in pairs(client.attached_buffers or {}) do
      table.insert(buffers, b)
      inline.detach(b)
      next_edit.detach(b)
    end
    compat.call(client, "stop")
  end
  legacy_client_id = nil
  if not restart then
    return
  end
  local tries = 0
  local function again()
    tries = tries + 1
    if #compat.clients(M.NAME) > 0 and tries < 50 then
      vim.defer_fn(again, 100)
      return
    end
    for _, b in ipairs(buffers) do
      if api.nvim_buf_is_valid(b) then
        M.start(b)
      end
    end
  end
  vim.defer_fn(again, 100)
end

--- Configures the client and, unless start_server = false, starts the server
--- for buffers of the configured filetypes.
function M.setup(opts)
  local o = config.set(opts)
  progress.setup()
  if o.commands then
    require("mmlsp.commands").create()
  end
  if o.start_server == false then
    return M
  end
  local group = api.nvim_create_augroup("mmlsp_start", { clear = true })
  api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = o.filetypes,
    callback = function(args)
      M.start(args.buf)
    end,
  })
  -- Buffers already open when setup() runs.
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) and vim.tbl_contains(o.filetypes, vim.bo[b].filetype) then
      M.start(b)
    end
  end
  return M
end

-- The keymaps' and users' entry points.
M.accept = function()
  return inline.accept()
end
M.accept_word = function()
  return inline.accept_word()
end
M.accept_line = function()
  return inline.accept_line()
end
M.dismiss = function()
  return inline.dismiss()
end
M.trigger = function()
  return inline.request(nil, true)
end
M.is_visible = function(bufnr)
  return inline.is_visible(bufnr)
end
-- Next edits.
M.next_edit_request = function()
  return next_edit.request(nil, true)
end
M.next_edit_accept = function()
  return next_edit.accept()
end
M.next_edit_jump = function()
  return next_edit.jump()
end
M.next_edit_dismiss = function()
  return next_edit.dismiss()
end
M.next_edit_visible = function(bufnr)
  return next_edit.is_visible(bufnr)
end

function M.explain(range)
  return require("mmlsp.commands").explain(range)
end
function M.docstring(range)
  return require("mmlsp.commands").docstring(range)
end
--- Stops the running AI actions (window/workDoneProgress/cancel).
function M.cancel()
  return progress.cancel()
end
function M.status(callback)
  return require("mmlsp.commands").status(callback)
end

--- nvim-lspconfig's configuration for mmlsp (also installed as
--- lspconfig.configs.mmlsp, so `require("lspconfig").mmlsp.setup{}` works).
function M.lspconfig_config()
  return {
    default_config = {
      cmd = config.default_cmd(),
      filetypes = vim.deepcopy(config.defaults.filetypes),
      root_dir = function(fname)
        return compat.find_root(fname, config.defaults.root_markers) or vim.fn.getcwd()
      end,
      single_file_support = true,
      init_options = vim.empty_dict(),
      capabilities = capabilities(),
      on_attach = M.on_attach,
    },
    docs = {
      description = "mmlsp: AI inline completions, code actions and hover from a local code model.",
    },
  }
end

return M
