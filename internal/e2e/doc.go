// Package e2e holds signet's end-to-end suite. It runs the manager binary
// as separate processes against a real kube-apiserver and etcd (envtest),
// as the ServiceAccounts config/rbac ships, bound only to it, installs the
// CRD, the RBAC and the samples with kubectl, acts as a signing workload
// that reads the signing Secret and mints JWTs, and verifies every token
// with real verifier libraries (coreos/go-oidc with OIDC discovery over
// TLS, MicahParks/keyfunc with a refreshing jwkset HTTP storage) through
// scheduled rotations, a rotationTrigger, a revocation and a SIGKILL of the
// manager in the middle of a rotation. It also runs `make run`'s program
// and checks it cleans up after itself.
//
// The package has only tests; run it alone with
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test -race ./internal/e2e/...
//
// See docs/e2e.md.
package e2e
