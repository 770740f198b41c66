-- Loaded at startup: nothing starts until require("mmlsp").setup() or an
-- LSP configuration (nvim-lspconfig, vim.lsp.enable) starts the server.
if vim.g.loaded_mmlsp then
  return
end
vim.g.loaded_mmlsp = true

local function highlight()
  vim.api.nvim_set_hl(0, "MmlspGhostText", { link = "Comment", default = true })
end
highlight()

local group = vim.api.nvim_create_augroup("mmlsp_plugin", { clear = true })
vim.api.nvim_create_autocmd("ColorScheme", { group = group, callback = highlight })

-- Neovim 0.8+: ghost text for mmlsp clients however they were started.
if vim.fn.has("nvim-0.8") == 1 then
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(args)
      local client = args.data and vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == "mmlsp" then
        require("mmlsp").on_attach(client, args.buf)
      end
    end,
  })
end
