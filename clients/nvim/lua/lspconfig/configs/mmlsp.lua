-- Lets nvim-lspconfig find mmlsp by name: `require("lspconfig").mmlsp.setup{}`.
return require("mmlsp").lspconfig_config()
