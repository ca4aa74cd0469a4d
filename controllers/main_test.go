package controllers

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/internal/testenv"
)

// env is the real kube-apiserver and etcd every integration test of this
// package talks to.
var env *testenv.Env

// TestMain is testenv.Main, plus the namespace signet runs in (where it
// keeps its claim records), and stopping the shared TenantIdentity cache
// before the control plane: an open watch would hold kube-apiserver's
// shutdown until envtest gives up on it.
func TestMain(m *testing.M) {
	// The manager's and clients' own logs, shown with a failing run.
	log.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{}))
	testenv.MainWith(m, &env, func(e *testenv.Env) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}
		if err := e.Client.Create(context.Background(), ns); err != nil {
			return fmt.Errorf("create the system namespace: %w", err)
		}
		return nil
	}, stopShared)
}
