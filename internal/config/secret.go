package config

import "github.com/usagemeter/usagemeter/collectors"

// Secret is the config file's name for collectors.Secret: a string that
// never prints (fmt, YAML, JSON, slog). The type lives in the public
// collectors package so that a program using a collector or the report
// package can hold a password without reaching into this internal package.
type Secret = collectors.Secret
