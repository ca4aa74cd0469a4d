package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Plain HTTP only on loopback: tokens and the bearer tokens presented are
// credentials.
func TestListenRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		ln, w, err := listen(Options{BindAddress: addr})
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		if w != nil {
			t.Errorf("%s: a certificate watcher without a certificate", addr)
		}
		if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
			t.Errorf("%s bound %s", addr, ln.Addr())
		}
		_ = ln.Close()
	}
	for _, addr := range []string{":0", "0.0.0.0:0"} {
		ln, _, err := listen(Options{BindAddress: addr})
		if err == nil {
			_ = ln.Close()
			t.Errorf("%s: plain HTTP on every interface accepted", addr)
			continue
		}
		for _, want := range []string{"refusing plain HTTP", "not a loopback address", "--tls-cert-file", "--token-bind-address=0"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", addr, err, want)
			}
		}
	}
	if _, _, err := listen(Options{BindAddress: "127.0.0.1:notaport"}); err == nil || !strings.Contains(err.Error(), "listen on 127.0.0.1:notaport") {
		t.Errorf("bad address: %v", err)
	}
	if _, err := (Options{TLSCertFile: "x.crt"}).withDefaults(); err == nil {
		t.Error("a certificate without its key accepted")
	}
}

// With a certificate the listener serves TLS on any address, and a plain
// HTTP client gets nowhere.
func TestListenTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	if _, _, err := listen(Options{BindAddress: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: filepath.Join(t.TempDir(), "missing.key")}); err == nil {
		t.Error("a missing key file accepted")
	}
	ln, watcher, err := listen(Options{BindAddress: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if watcher == nil {
		t.Fatal("no certificate watcher")
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }), ReadHeaderTimeout: time.Second,
		ErrorLog: log.New(io.Discard, "", 0)} // the plain HTTP attempt below is a handshake error
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Post("https://"+ln.Addr().String()+"/", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.TLS == nil {
		t.Errorf("HTTPS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Post("http://"+ln.Addr().String()+"/", "application/json", nil); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusTeapot {
			t.Error("plain HTTP served by the TLS listener")
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signet token test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}
