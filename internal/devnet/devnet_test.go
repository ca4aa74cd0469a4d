package devnet

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
)

func TestListening(t *testing.T) {
	cases := []struct {
		line, name, addr string
	}{
		// What controller-runtime's manager.Server logs, JSON-encoded by zap.
		{`{"level":"info","ts":"2026-01-01T00:00:00Z","msg":"starting server","name":"health probe","addr":"127.0.0.1:40123"}`, "health probe", "127.0.0.1:40123"},
		{`{"level":"info","msg":"starting server","name":"jwks","addr":"[::]:8443"}`, "jwks", "[::]:8443"},
		{`{"level":"info","msg":"starting server","addr":"127.0.0.1:1"}`, "", ""},    // unnamed
		{`{"level":"info","msg":"Starting workers","name":"jwks"}`, "", ""},          // another message
		{`{"level":"info","msg":"starting server","name":"jwks","addr":""}`, "", ""}, // no address
		{`2026-01-01T00:00:00Z INFO starting server {"name": "jwks"}`, "", ""},       // not JSON
		{``, "", ""},
	}
	for _, tc := range cases {
		name, addr, ok := Listening([]byte(tc.line))
		if name != tc.name || addr != tc.addr || ok != (tc.name != "") {
			t.Errorf("Listening(%s) = %q %q %v, want %q %q", tc.line, name, addr, ok, tc.name, tc.addr)
		}
	}
}

// Reports are read from lines however the writes split them, everything
// is passed through, and a child that exits unreported is an error.
func TestAddrs(t *testing.T) {
	var out strings.Builder
	var seen []string
	a := &Addrs{OnReport: func(name, addr string) { seen = append(seen, name+"="+addr) }}
	w := a.Tee(&out)
	log := `{"msg":"starting server","name":"metrics","addr":"127.0.0.1:1001"}` + "\n" +
		`{"msg":"other"}` + "\n" +
		`{"msg":"starting server","name":"jwks","addr":"127.0.0.1:1002"}` + "\n"
	for _, chunk := range []string{log[:10], log[10:90], log[90:]} {
		if _, err := io.WriteString(w, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != log {
		t.Errorf("passed through %q, want %q", out.String(), log)
	}
	exited := make(chan struct{})
	for name, want := range map[string]string{"metrics": "127.0.0.1:1001", "jwks": "127.0.0.1:1002"} {
		if got, err := a.Wait(context.Background(), name, exited); err != nil || got != want {
			t.Errorf("Wait(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if strings.Join(seen, " ") != "metrics=127.0.0.1:1001 jwks=127.0.0.1:1002" {
		t.Errorf("OnReport saw %v", seen)
	}
	close(exited)
	if _, err := a.Wait(context.Background(), "health probe", exited); err == nil || !strings.Contains(err.Error(), `"health probe"`) {
		t.Errorf("Wait after exit without a report: %v", err)
	}
}

// A report written while Wait waits wakes it.
func TestAddrsWaitWakes(t *testing.T) {
	a := &Addrs{}
	got := make(chan string)
	go func() {
		addr, _ := a.Wait(context.Background(), "jwks", nil)
		got <- addr
	}()
	_, _ = io.WriteString(a.Tee(io.Discard), `{"msg":"starting server","name":"jwks","addr":"127.0.0.1:7"}`+"\n")
	if addr := <-got; addr != "127.0.0.1:7" {
		t.Errorf("Wait = %q", addr)
	}
}

// echo serves one line back per line, prefixed with its name.
func echo(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					_, _ = io.WriteString(c, name+":"+sc.Text()+"\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// The relay's address stays while its backend changes; without a backend
// it closes connections; Close ends the relayed ones.
func TestRelay(t *testing.T) {
	r, err := NewRelay("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if _, err := roundTrip(t, r.Addr(), "x"); err == nil {
		t.Error("no backend, yet an answer")
	}
	r.SetBackend(echo(t, "one"))
	if got, err := roundTrip(t, r.Addr(), "a"); err != nil || got != "one:a\n" {
		t.Errorf("via the first backend: %q %v", got, err)
	}
	// A connection made now stays with the first backend.
	kept, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = kept.Close() }()
	keptR := bufio.NewReader(kept)
	if _, err := io.WriteString(kept, "k\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := keptR.ReadString('\n'); err != nil || got != "one:k\n" {
		t.Errorf("kept connection: %q %v", got, err)
	}
	r.SetBackend(echo(t, "two"))
	if got, err := roundTrip(t, r.Addr(), "b"); err != nil || got != "two:b\n" {
		t.Errorf("via the second backend: %q %v", got, err)
	}
	r.SetBackend("")
	if _, err := roundTrip(t, r.Addr(), "c"); err == nil {
		t.Error("backend unset, yet an answer")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := keptR.ReadString('\n'); err == nil {
		t.Errorf("a relayed connection outlived Close: read %q", got)
	}
}
