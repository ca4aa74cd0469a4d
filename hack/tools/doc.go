// Package tools pins the versions of the build tools (controller-gen,
// golangci-lint) in their own module, so their dependencies never mix with
// the operator's. The Makefile builds them with `go build -modfile`.
package tools
