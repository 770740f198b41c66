-- Neovim 0.11+ native configuration: `vim.lsp.enable("mmlsp")` with this
-- plugin on the runtimepath. Override with vim.lsp.config("mmlsp", {...}), for
-- example init_options = { model = "..." }.
local config = require("mmlsp.config")

return {
  cmd = config.default_cmd(),
  filetypes = vim.deepcopy(config.defaults.filetypes),
  root_markers = vim.deepcopy(config.defaults.root_markers),
  init_options = vim.empty_dict(),
  capabilities = { textDocument = { inlineCompletion = { dynamicRegistration = false } } },
  on_attach = function(client, bufnr)
    require("mmlsp").on_attach(client, bufnr)
  end,
}
