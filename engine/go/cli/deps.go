//go:build tools

// Package cli only pins the Go module that provides the Pulumi CLI; the binary is built
// straight from github.com/pulumi/pulumi/pkg/v3/cmd/pulumi by scripts/engine.mjs.
package cli

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
