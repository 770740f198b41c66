-- A minimal, isolated Neovim configuration for the acceptance journeys
-- (tests/test_nvim_journeys.py), which run Neovim in tmux as a person would
-- and read the screen. Nothing here drives the editor: the test types.
--
--   MMLSP_JOURNEY_PYTHON      Python that runs the server (default python3)
--   MMLSP_JOURNEY_MODEL       completion model (default: the server's, Gemma-3-270M)
--   MMLSP_JOURNEY_CHAT_MODEL  chat model for actions (default: the server's)
--   MMLSP_JOURNEY_VISION_MODEL  vision model for image hover (default: none)
--   MMLSP_JOURNEY_LOG         server log file (optional)
--   MMLSP_JOURNEY_USER_PROGRESS  set: a user's own global $/progress handler, which
--                             counts into g:user_progress (the plugin must keep it)
--
-- 'termguicolors' stays off: the 256-colour case, the tmux default.
local function env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    return nil
  end
  return value
end

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

local settings = {}
settings.model = env("MMLSP_JOURNEY_MODEL")
settings.chatModel = env("MMLSP_JOURNEY_CHAT_MODEL")
settings.visionModel = env("MMLSP_JOURNEY_VISION_MODEL")

local cmd = { env("MMLSP_JOURNEY_PYTHON") or "python3", "-m", "mmlsp" }
if env("MMLSP_JOURNEY_LOG") then
  vim.list_extend(cmd, { "--log-level", "info", "--log-file", env("MMLSP_JOURNEY_LOG") })
end

if env("MMLSP_JOURNEY_USER_PROGRESS") then
  vim.g.user_progress = 0
  local theirs = vim.lsp.handlers["$/progress"]
  vim.lsp.handlers["$/progress"] = function(err, result, ctx, config)
    vim.g.user_progress = vim.g.user_progress + 1
    return theirs(err, result, ctx, config)
  end
end

require("mmlsp").setup({ cmd = cmd, settings = settings })

-- Like many colour schemes, give Comment a gui colour only: without
-- 'termguicolors' it is then drawn like code, and so would ghost text linked to it.
vim.api.nvim_set_hl(0, "Comment", { fg = "#7f848e" })
