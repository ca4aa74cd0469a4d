package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// startMetrics runs a manager that serves only the metrics endpoint of o.
// No apiserver is needed: nothing here reaches one (a scrape without a
// token is refused before any TokenReview).
func startMetrics(t *testing.T, o metricsOptions) string {
	t.Helper()
	cfg := &rest.Config{Host: "https://127.0.0.1:1"} // never contacted
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := addMetricsServer(mgr, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return addr.String()
}

func get(t *testing.T, c *http.Client, url string) (int, string, *tls.ConnectionState) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.TLS
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, InsecureSkipVerify: pool == nil, MinVersion: tls.VersionTLS12, //nolint:gosec // nil pool: the self-signed case
	}}}
}

// --metrics-secure=false: plain HTTP, as before.
func TestMetricsPlain(t *testing.T) {
	addr := startMetrics(t, metricsOptions{addr: "127.0.0.1:0"})
	status, body, _ := get(t, http.DefaultClient, "http://"+addr+"/metrics")
	if status != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("plain metrics: %d %.200s", status, body)
	}
}

// --metrics-secure (the default): HTTPS with a self-signed certificate, no
// plain HTTP, and no metrics without a bearer token.
func TestMetricsSecureSelfSigned(t *testing.T) {
	addr := startMetrics(t, metricsOptions{addr: "127.0.0.1:0", secure: true})
	if status, body, _ := get(t, http.DefaultClient, "http://"+addr+"/metrics"); status == http.StatusOK || strings.Contains(body, "go_goroutines") {
		t.Errorf("plain HTTP to the secure endpoint: %d %.200s", status, body)
	}
	status, body, state := get(t, tlsClient(nil), "https://"+addr+"/metrics")
	if status != http.StatusUnauthorized || strings.Contains(body, "go_goroutines") {
		t.Errorf("HTTPS without a token: %d %.200s, want 401", status, body)
	}
	if cert := state.PeerCertificates[0]; len(cert.DNSNames) == 0 || cert.DNSNames[0] != "localhost" {
		t.Errorf("self-signed certificate for %v, want localhost", cert.DNSNames)
	}
	if state.NegotiatedProtocol == "h2" {
		t.Error("HTTP/2 negotiated; the endpoint offers HTTP/1.1 only")
	}
}

// --metrics-cert-path: the certificate given is served.
func TestMetricsSecureCertPath(t *testing.T) {
	dir := t.TempDir()
	pool := writeCert(t, filepath.Join(dir, "m.crt"), filepath.Join(dir, "m.key"))
	addr := startMetrics(t, metricsOptions{addr: "127.0.0.1:0", secure: true, certPath: dir, certName: "m.crt", keyName: "m.key"})
	if status, _, _ := get(t, tlsClient(pool), "https://"+addr+"/metrics"); status != http.StatusUnauthorized {
		t.Errorf("HTTPS with the given certificate, no token: %d, want 401", status)
	}
}

func TestMetricsBadOptions(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    metricsOptions
		want string
	}{
		{metricsOptions{addr: "127.0.0.1:notaport"}, "metrics: listen on 127.0.0.1:notaport"},
		{metricsOptions{addr: "127.0.0.1:0", secure: true, certPath: t.TempDir(), certName: "tls.crt", keyName: "tls.key"}, "metrics: certificate"},
	} {
		if _, err := addMetricsServer(mgr, cfg, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.o, err, tc.want)
		}
	}
	if addr, err := addMetricsServer(mgr, cfg, metricsOptions{addr: "0", secure: true}); addr != nil || err != nil {
		t.Errorf("--metrics-bind-address=0: %v %v, want off", addr, err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns a
// pool trusting it.
func writeCert(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
