package controllers

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr/funcr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/internal/testenv"
)

// env is the real kube-apiserver and etcd every integration test of this
// package talks to.
var env *testenv.Env

// TestMain is testenv.Main, plus stopping the shared TenantIdentity cache
// before the control plane: an open watch would hold kube-apiserver's
// shutdown until envtest gives up on it.
func TestMain(m *testing.M) {
	// The manager's and clients' own logs, shown with a failing run.
	log.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{}))
	testenv.Main(m, &env, stopShared)
}
