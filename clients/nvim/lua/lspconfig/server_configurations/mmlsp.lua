-- nvim-lspconfig before 1.0 looked configurations up here.
return require("mmlsp").lspconfig_config()
