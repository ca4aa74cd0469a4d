package main

import (
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/signet-dev/signet/internal/jwks"
)

// The token API runs only beside the controller, never in a server-only
// replica; off with 0; plain HTTP only on loopback, else the manager
// refuses to start with an error that says what to do.
func TestTokenAPIWiring(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		run     bool
		wantErr string
	}{
		{"loopback", []string{"--token-bind-address=127.0.0.1:0"}, true, ""},
		{"off", []string{"--token-bind-address=0"}, false, ""},
		{"server-only replica", []string{"--controllers=false", "--token-bind-address=127.0.0.1:0"}, false, ""},
		{"the default, without TLS", nil, false, "refusing plain HTTP on :9443"},
		{"every interface, without TLS", []string{"--token-bind-address=0.0.0.0:0"}, false, "not a loopback address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, _, err := parseFlags(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			cfg := &rest.Config{Host: "https://127.0.0.1:1"} // never contacted
			mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: newScheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := jwks.NewServer(jwks.Options{BindAddress: "0"})
			if err != nil {
				t.Fatal(err)
			}
			ts, err := addTokenAPI(mgr, srv, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--tls-cert-file") {
					t.Fatalf("error %v, want one containing %q and the way out", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (ts != nil) != tc.run {
				t.Fatalf("token API running: %v, want %v", ts != nil, tc.run)
			}
			if ts != nil {
				if ts.Addr() == nil || !strings.HasPrefix(ts.Addr().String(), "127.0.0.1:") {
					t.Errorf("bound %v", ts.Addr())
				}
			}
		})
	}
}
