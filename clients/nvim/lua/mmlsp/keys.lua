-- Buffer-local keymaps shared by the plugin's features (ghost text, next edits).
--
-- One key can serve several features: <Tab> accepts a ghost-text completion when one
-- is shown, else a next edit, else does what it did before mmlsp mapped it. Each
-- feature adds a handler to the key's chain (in attach order: ghost text first);
-- a handler returns the keys to run, or nil to let the next one decide. When none
-- does, the key falls through to its previous mapping (buffer-local or global, as
-- found when the key was first mapped here), or to the key itself.
local api = vim.api

local M = {}

M.DESC = "mmlsp: "

-- Lua callbacks of the mappings that ours replaced, by number.
local fallbacks = {}

-- bufnr -> mode .. key -> { mode, lhs, prev, handlers = { { owner, fn } } }
local chains = {}
M._chains = chains

function M._fallback(id)
  if fallbacks[id] then
    fallbacks[id]()
  end
end

-- The previous mapping of `lhs` in `mode`, with its Lua callback (if any)
-- registered in `fallbacks` and replaced by its number there.
local function previous_mapping(bufnr, mode, lhs)
  local prev = vim.fn.maparg(lhs, mode, false, true)
  if type(prev) ~= "table" or prev.lhs == nil then
    return nil
  end
  if type(prev.desc) == "string" and prev.desc:sub(1, #M.DESC) == M.DESC then
    return nil -- our own mapping from an earlier attach
  end
  if prev.callback ~= nil then
    local fn = prev.callback
    if type(fn) ~= "function" then
      -- 0.7's maparg() gives a reference number; the keymap API gives the function.
      fn = nil
      local maps = prev.buffer == 1 and api.nvim_buf_get_keymap(bufnr, mode) or api.nvim_get_keymap(mode)
      for _, m in ipairs(maps) do
        if m.lhs == prev.lhs and type(m.callback) == "function" then
          fn = m.callback
          break
        end
      end
    end
    if not fn then
      return nil
    end
    table.insert(fallbacks, fn)
    prev.callback = #fallbacks
  end
  return prev
end

-- What a key does when mmlsp has nothing to do with it: its previous mapping
-- (buffer-local or global) when there was one, else the key itself.
local function fall_through(prev, lhs)
  if type(prev) ~= "table" or prev.lhs == nil then
    return lhs
  end
  if prev.callback then
    if prev.expr == 1 then
      local result = fallbacks[prev.callback]()
      if type(result) ~= "string" then
        return ""
      end
      if prev.replace_keycodes == 1 or prev.replace_keycodes == true then
        return result
      end
      -- Our mapping replaces keycodes; escape '<' so the result stays literal.
      return (result:gsub("<", "<lt>"))
    end
    -- Runs in order with the keys around it, outside the expression's textlock.
    return "<Cmd>lua require('mmlsp.keys')._fallback(" .. prev.callback .. ")<CR>"
  end
  local rhs = prev.rhs or ""
  if prev.sid and prev.sid > 0 then
    rhs = rhs:gsub("<[Ss][Ii][Dd]>", "<SNR>" .. prev.sid .. "_")
  end
  if prev.expr == 1 then
    local ok, result = pcall(vim.api.nvim_eval, rhs)
    return ok and type(result) == "string" and result:gsub("<", "<lt>") or ""
  end
  local keys = api.nvim_replace_termcodes(rhs, true, true, true)
  api.nvim_feedkeys(keys, (prev.noremap == 1 and "n" or "m") .. "i", false)
  return ""
end

--- Adds `handler` to the chain of `lhs` in `mode` for `bufnr`, mapping the key on
--- first use. handler(fall) returns the keys to run or nil; fall() gives what the
--- key would do without mmlsp (for a handler that acts and then lets the key act,
--- such as dismissing a suggestion on <Esc>). A handler of the same owner and name
--- replaces the earlier one.
function M.map(bufnr, mode, lhs, owner, name, handler)
  if not lhs or lhs == "" then
    return
  end
  local id = mode .. api.nvim_replace_termcodes(lhs, true, true, true)
  chains[bufnr] = chains[bufnr] or {}
  local chain = chains[bufnr][id]
  if chain then
    for i, h in ipairs(chain.handlers) do
      if h.owner == owner and h.name == name then
        chain.handlers[i].fn = handler
        return
      end
    end
    table.insert(chain.handlers, { owner = owner, name = name, fn = handler })
    return
  end
  chain = { mode = mode, lhs = lhs, prev = previous_mapping(bufnr, mode, lhs) }
  chain.handlers = { { owner = owner, name = name, fn = handler } }
  chains[bufnr][id] = chain
  local function fall()
    return fall_through(chain.prev, chain.lhs)
  end
  vim.keymap.set(mode, lhs, function()
    for _, h in ipairs(chain.handlers) do
      local keys = h.fn(fall)
      if keys then
        return keys
      end
    end
    return fall()
  end, { buffer = bufnr, expr = true, silent = true, desc = M.DESC .. name })
end

--- Removes `owner`'s handlers in `bufnr`; a key left with none is unmapped.
function M.unmap(bufnr, owner)
  local by_id = chains[bufnr]
  if not by_id then
    return
  end
  for id, chain in pairs(by_id) do
    for i = #chain.handlers, 1, -1 do
      if chain.handlers[i].owner == owner then
        table.remove(chain.handlers, i)
      end
    end
    if #chain.handlers == 0 then
      by_id[id] = nil
      if api.nvim_buf_is_valid(bufnr) then
        pcall(vim.keymap.del, chain.mode, chain.lhs, { buffer = bufnr })
      end
    end
  end
  if next(by_id) == nil then
    chains[bufnr] = nil
  end
end

return M
