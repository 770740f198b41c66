-- Options of the Neovim client and their defaults (README.md lists them all).
local M = {}

M.defaults = {
  -- Command that starts the server over stdio. nil: `mmlsp` when it is on PATH,
  -- otherwise `python3 -m mmlsp`.
  cmd = nil,
  -- Extra environment for the server process.
  cmd_env = nil,
  -- Filetypes the server is started and attached for.
  filetypes = { "python" },
  -- Files or folders that mark a project root (the server's workspace folder).
  root_markers = { "pyproject.toml", "setup.py", "setup.cfg", ".git" },
  -- Server settings (camelCase keys as in the server's README), sent as
  -- initializationOptions and answered to workspace/configuration.
  settings = {},
  -- Set to false to configure only the client side (ghost text, keymaps, commands)
  -- when the server is started by nvim-lspconfig or vim.lsp.enable().
  start_server = true,
  -- Called as on_attach(client, bufnr) after mmlsp's own attach.
  on_attach = nil,
  -- Extra client capabilities merged over Neovim's defaults.
  capabilities = nil,
  -- Create :MmlspExplain, :MmlspDocstring, :MmlspEdit, :MmlspCancel, :MmlspStatus,
  -- :MmlspRestart, :MmlspToggle, :MmlspNextEdit, :MmlspNextEditToggle (and
  -- <Plug>(mmlsp-edit)).
  commands = true,
  inline = {
    -- Show inline completions as ghost text.
    enabled = true,
    -- Ask automatically while typing in insert mode (otherwise only on keymaps.trigger).
    auto_trigger = true,
    -- Wait this long after the last keystroke before asking the server. Short: the
    -- server holds requests back itself while typing outruns the model
    -- (debounceMaxMs), and every millisecond here adds to every suggestion.
    debounce_ms = 75,
    -- Highlight group of the ghost text (linked to Comment unless you define it).
    hl_group = "MmlspGhostText",
    -- Do not ask while the completion popup menu is visible.
    hide_during_completion = false,
  },
  -- Insert-mode keys (buffer-local, only in attached buffers). false disables one.
  -- accept falls through to the key's previous meaning when no suggestion is shown.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-C-Right>",
    dismiss = "<C-]>",
    trigger = "<M-\\>",
  },
  -- Next-edit suggestions (mmlsp/nextEdit): after you edit and pause, the server
  -- predicts the follow-up edit anywhere in the lines around the cursor; it is drawn
  -- in place (removed text highlighted, inserted text as virtual text).
  next_edit = {
    -- Show next edits at all (client side; the server's own switch is the
    -- setting nextEdit). Off: no requests, no keys.
    enabled = true,
    -- Ask after an edit and a pause, and when the cursor moves to another line
    -- after an edit (otherwise only on :MmlspNextEdit and after an accepted one).
    auto_trigger = true,
    -- Pause after the last edit before asking.
    debounce_ms = 400,
    -- Normal- and insert-mode keys (buffer-local). false disables one. Each falls
    -- through to the key's previous meaning when no next edit is shown; a shown
    -- ghost-text completion keeps the key (inline completion first).
    -- accept: applies the next edit when the cursor is on its lines, otherwise
    -- first moves the cursor there (a second press applies it).
    accept = "<Tab>",
    -- Only moves the cursor to the next edit (accept does this too).
    jump = false,
    -- Hides the next edit; <Esc> still leaves insert mode.
    dismiss = "<Esc>",
  },
  -- Where :MmlspExplain shows an explanation the server returns: "float" or "split".
  explain_view = "float",
  -- Neovim before 0.10 has no default `K` for LSP hover (it runs 'keywordprg',
  -- pydoc for Python): map `K` to vim.lsp.buf.hover() in attached buffers,
  -- unless something else maps `K` there. Nothing happens on 0.10 and later.
  map_hover = true,
  -- Show the server's progress (loading the model, and AI actions while they run)
  -- in the echo area; :MmlspCancel stops the running action.
  progress = true,
}

M.options = vim.deepcopy(M.defaults)

local function default_cmd()
  if vim.fn.executable("mmlsp") == 1 then
    return { "mmlsp" }
  end
  local python = vim.fn.executable("python3") == 1 and "python3" or "python"
  return { python, "-m", "mmlsp" }
end
M.default_cmd = default_cmd

function M.set(opts)
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- Lists are replaced, not merged index by index.
  for _, key in ipairs({ "filetypes", "root_markers", "cmd" }) do
    if opts and opts[key] ~= nil then
      M.options[key] = opts[key]
    end
  end
  if opts and opts.settings ~= nil then
    M.options.settings = opts.settings
  end
  if M.options.cmd == nil then
    M.options.cmd = default_cmd()
  end
  return M.options
end

-- Settings the server takes only from its own command line (they decide where code
-- goes, and with which key): setup()'s settings are the user's own config, so the
-- plugin passes these as flags, and never as initializationOptions.
M.LAUNCH_FLAGS = {
  backend = "--backend",
  baseUrl = "--base-url",
  apiKeyEnv = "--api-key-env",
  trustRemoteCode = "--trust-remote-code",
}

--- The server command: `cmd` plus the flags for M.LAUNCH_FLAGS keys of `settings`.
function M.command(cmd, settings)
  local out = vim.deepcopy(cmd or {})
  for key, flag in pairs(M.LAUNCH_FLAGS) do
    local value = settings and settings[key]
    if key == "trustRemoteCode" then
      if value == true then
        table.insert(out, flag)
      end
    elseif type(value) == "string" and value ~= "" then
      table.insert(out, flag)
      table.insert(out, value)
    end
  end
  return out
end

--- initializationOptions: an object, never a JSON array, even when empty; without
--- the M.LAUNCH_FLAGS keys, which go on the command line.
function M.init_options(settings)
  local out = {}
  for key, value in pairs(settings or {}) do
    if M.LAUNCH_FLAGS[key] == nil then
      out[key] = value
    end
  end
  if vim.tbl_isempty(out) then
    return vim.empty_dict()
  end
  return out
end

return M
