package main

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
)

func TestFlagsDefaultsFollowDesign(t *testing.T) {
	o, _, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := options{
		metricsAddr: ":8080", metricsSecure: true, metricsCertName: "tls.crt", metricsCertKey: "tls.key",
		probeAddr: ":8081", jwksAddr: ":8443",
		publicBaseURL: "https://signet-jwks.signet-system.svc", maxCacheAge: 5 * time.Minute,
		orgBinding: "namespace-label", controllers: true, jwksServer: true,
		leaderElectionID: "signet.identity.signet.dev",
		kubeAPIQPS:       500, kubeAPIBurst: 1000, maxConcurrentReconciles: 8,
		systemNamespace: "signet-system", signingPropagation: 2 * time.Minute,
		tokenAddr: ":9443", tokenAudience: "signet", pprofAddr: "0",
	}
	if o != want {
		t.Fatalf("defaults\n got %+v\nwant %+v", o, want)
	}
}

func TestFlagsRefuseNonsense(t *testing.T) {
	cases := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--org-binding=namespace"}, `--org-binding="namespace"`},
		{[]string{"--tls-cert-file=/x.crt"}, "--tls-cert-file and --tls-key-file go together"},
		{[]string{"--max-cache-age=-1s"}, "--max-cache-age must not be negative"},
		{[]string{"--controllers=false", "--jwks-server=false"}, "nothing to run"},
		{[]string{"--token-review-audience="}, "--token-review-audience must not be empty"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
	}
	for _, tc := range cases {
		_, _, err := parseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.wantErr)
		}
	}
}

// No flag can make the manager log at client-go's body-dumping verbosity.
func TestVerbosityIsCapped(t *testing.T) {
	_, zapOpts, err := parseFlags([]string{"--zap-log-level=10"})
	if err != nil {
		t.Fatal(err)
	}
	capped := capVerbosity(zapOpts.Level)
	for _, tc := range []struct {
		level zapcore.Level
		want  bool
	}{{zapcore.InfoLevel, true}, {-5, true}, {-6, false}, {-8, false}, {-10, false}} {
		if got := capped.Enabled(tc.level); got != tc.want {
			t.Errorf("level %d enabled = %v, want %v", tc.level, got, tc.want)
		}
	}
	if capVerbosity(nil).Enabled(-1) {
		t.Error("default level enables debug")
	}
}

// The manager's cache is internal/cacheopts' (tested there), for the
// flags' namespaces.
func TestCacheOptions(t *testing.T) {
	all := cacheOptions(options{systemNamespace: "signet-system", controllers: true})
	if all.DefaultNamespaces != nil {
		t.Errorf("no --watch-namespace, yet namespaces %v", all.DefaultNamespaces)
	}
	one := cacheOptions(options{watchNamespace: "tenant-acme", systemNamespace: "signet-system"})
	if _, ok := one.DefaultNamespaces["tenant-acme"]; !ok || len(one.DefaultNamespaces) != 1 {
		t.Errorf("--watch-namespace=tenant-acme: namespaces %v", one.DefaultNamespaces)
	}
	for obj, by := range one.ByObject {
		if _, ok := obj.(*corev1.ConfigMap); ok {
			if _, ok := by.Namespaces["signet-system"]; !ok {
				t.Errorf("--watch-namespace: the claim records of signet-system are not cached: %v", by.Namespaces)
			}
		}
	}
}
