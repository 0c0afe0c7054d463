//go:build tools

// Keeps cmd/kyverno's dependencies in go.mod / go.sum (a main package cannot be imported
// for real; the build tag keeps it out of every build).
package tools

import _ "github.com/kyverno/kyverno/cmd/kyverno"
