-- A minimal, isolated Neovim configuration to try next edits in a terminal (tmux)
-- with the scripted server of tests/fake_next_edit_server.py; used by
-- tests/test_nvim_next_edit.py, which types and reads the screen.
--
--   MMLSP_NE_CMD  the server command, a JSON list
--
-- 'termguicolors' stays off: the 256-colour case, the tmux default.
local this = debug.getinfo(1, "S").source:sub(2)
local plugin_dir = vim.fn.fnamemodify(this, ":p:h:h")
vim.opt.runtimepath:prepend(plugin_dir)

vim.o.termguicolors = false
vim.o.swapfile = false
vim.o.shada = ""
vim.o.laststatus = 2
vim.o.showmode = true
vim.o.ruler = true
vim.o.signcolumn = "yes"
vim.opt.shortmess:append("I")
vim.cmd("syntax on")

local cmd = vim.fn.json_decode(os.getenv("MMLSP_NE_CMD") or "[]")
require("mmlsp").setup({
  cmd = cmd,
  inline = { auto_trigger = false },
  next_edit = { debounce_ms = 300 },
})
