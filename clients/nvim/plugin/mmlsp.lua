-- Loaded at startup: nothing starts until require("mmlsp").setup() or an
-- LSP configuration (nvim-lspconfig, vim.lsp.enable) starts the server.
if vim.g.loaded_mmlsp then
  return
end
vim.g.loaded_mmlsp = true

-- Ghost text must never look like code, in any terminal: a grey that is not
-- the normal text colour in 256-colour terminals (ctermfg, used without
-- 'termguicolors') and in true-colour ones (fg), and italic where the terminal
-- has it. Not a link to Comment: many colour schemes give Comment a gui colour
-- only, so without 'termguicolors' it would be drawn like the code around it.
-- `default`: a colour scheme or the user may define MmlspGhostText instead.
local function highlight()
  vim.api.nvim_set_hl(0, "MmlspGhostText", {
    fg = "#808080",
    ctermfg = 244,
    italic = true,
    cterm = { italic = true },
    default = true,
  })
  -- Next edits: the text a prediction removes, the text it inserts, and the hint
  -- at the cursor line when it is elsewhere.
  vim.api.nvim_set_hl(0, "MmlspNextEditDelete", { link = "DiffDelete", default = true })
  vim.api.nvim_set_hl(0, "MmlspNextEditInsert", { link = "DiffAdd", default = true })
  vim.api.nvim_set_hl(0, "MmlspNextEditHint", { link = "MmlspGhostText", default = true })
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
