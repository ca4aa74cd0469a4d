// Package helm pins the helm CLI in a module of its own: its Kubernetes and
// OCI dependencies never mix with the operator's or with hack/tools'. The
// Makefile builds bin/helm from here (make bin/helm).
package helm
