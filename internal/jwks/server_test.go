package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// fakeRegistration is an event handler registration whose sync tests flip.
type fakeRegistration struct {
	toolscache.ResourceEventHandlerRegistration
	synced atomic.Bool
}

func (r *fakeRegistration) HasSynced() bool { return r.synced.Load() }

// TestStartReadiness: until the informers have delivered their initial
// lists, ReadyCheck fails and every tenant route answers 503; then the
// marked org/sites are built before the server reports ready.
func TestStartReadiness(t *testing.T) {
	ti := newTI("ns", "x", "acme", siteA, epoch, metav1.ConditionTrue)
	k := genKey(t, "ES256", 0)
	s, _, _ := fakeServer(t, ti, jwksConfigMap(ti, "1", k))
	s.synced.Store(false)
	reg := &fakeRegistration{}
	s.registrations = append(s.registrations, reg)
	s.eventHandler().OnAdd(ti, true) // the informer's initial list

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()

	if err := s.ReadyCheck()(nil); err == nil {
		t.Errorf("ready before sync")
	}
	for rt := range numDocs {
		if rec := get(s, http.MethodGet, docPath("acme", siteA, rt)); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s before sync: %d", routeNames[rt], rec.Code)
		}
	}
	reg.synced.Store(true)
	eventually(t, 10*time.Second, func() string {
		if err := s.ReadyCheck()(nil); err != nil {
			return err.Error()
		}
		return ""
	})
	// Ready implies built: no window where a served tenant answers 404.
	if got := servedKIDs(t, s, "acme", siteA); got != k.KID {
		t.Errorf("after sync served %q", got)
	}
	if s.NeedLeaderElection() {
		t.Errorf("the server must run in every replica")
	}
}

func TestNewServerOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
		base    string
	}{
		{"defaults", Options{}, "", DefaultPublicBaseURL},
		{"trailing slash trimmed", Options{PublicBaseURL: "https://x.example/prefix/"}, "", "https://x.example/prefix"},
		{"relative URL", Options{PublicBaseURL: "/jwks"}, "public base URL", ""},
		{"query", Options{PublicBaseURL: "https://x.example/?a=b"}, "public base URL", ""},
		{"other scheme", Options{PublicBaseURL: "ftp://x.example"}, "public base URL", ""},
		{"cert without key", Options{TLSCertFile: "c.pem"}, "both", ""},
		{"key without cert", Options{TLSKeyFile: "k.pem"}, "both", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newServer(nil, tt.opts, discardLog)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.cfg.baseURL != tt.base || s.opts.BindAddress != DefaultBindAddress {
				t.Errorf("base %q, bind %q", s.cfg.baseURL, s.opts.BindAddress)
			}
		})
	}
}

// writeCert writes a fresh self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// Key first: the watcher reloads on either file and needs a matching pair.
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, cert
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestTLSServesAndReloads: with a certificate the listener speaks TLS, and
// a renewed certificate is served without a restart.
func TestTLSServesAndReloads(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := writeCert(t, dir, "first")
	ln, watcher, err := listen(Options{BindAddress: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	f := newServedFixture(t)
	srv := f.s.httpServer()
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = watcher.Start(ctx) }()

	// servedCert fetches the jwks document and returns the certificate the
	// server presented, trusting whatever it presents (it is checked below).
	servedCert := func() (*x509.Certificate, int, error) {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test compares the certificate itself
		}}
		resp, err := client.Get("https://" + ln.Addr().String() + docPath("acme", siteA, routeJWKS))
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0], resp.StatusCode, nil
	}
	cert, code, err := servedCert()
	if err != nil || code != http.StatusOK || !cert.Equal(first) {
		t.Fatalf("first certificate: %v, status %d", err, code)
	}
	// A verifying client accepts it too.
	pool := x509.NewCertPool()
	pool.AddCert(first)
	verifying := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := verifying.Get("https://" + ln.Addr().String() + docPath("acme", siteA, routeDiscovery))
	if err != nil {
		t.Fatalf("verifying client: %v", err)
	}
	resp.Body.Close()

	_, _, second := writeCert(t, dir, "second")
	eventually(t, 30*time.Second, func() string {
		cert, _, err := servedCert()
		switch {
		case err != nil:
			return err.Error()
		case !cert.Equal(second):
			return "still serving " + cert.Subject.CommonName
		}
		return ""
	})
}

// eventually polls cond until it returns "" or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
