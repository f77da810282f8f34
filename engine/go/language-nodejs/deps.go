//go:build tools

// Package languagenodejs only pins the Go module of the Node.js language host; the binary
// is built straight from that module's main package by scripts/engine.mjs.
package languagenodejs

import _ "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3"
