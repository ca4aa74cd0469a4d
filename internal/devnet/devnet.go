// Package devnet runs a signet manager as a child process on ports the
// child chooses: the parent passes 127.0.0.1:0 for each listener, learns
// the address bound from the child's log (Addrs), and, where it needs an
// address that is known before the child starts and outlives a restart (a
// public base URL), holds a listener of its own that relays to the child
// (Relay). No port is ever picked, released and handed over, so none can
// be taken in between by another process. Used by hack/run-local (make
// run) and the end-to-end suite.
package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Listening reads one log line of the manager: controller-runtime's
// manager.Server logs "starting server" with the server's name and its
// listener's address, once the listener is bound and just before it
// serves. The manager's listeners are all such servers: "jwks", "metrics"
// and "health probe".
func Listening(line []byte) (name, addr string, ok bool) {
	var entry struct {
		Msg  string `json:"msg"`
		Name string `json:"name"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(line, &entry) != nil || entry.Msg != "starting server" || entry.Name == "" || entry.Addr == "" {
		return "", "", false
	}
	return entry.Name, entry.Addr, true
}

// Addrs collects the listeners one run of a child reports, by name. Its
// zero value is ready; use a new one for each run.
type Addrs struct {
	// OnReport, when set, is called with each report as it is read.
	OnReport func(name, addr string)

	mu      sync.Mutex
	byName  map[string]string
	changed chan struct{} // closed at the next report
}

// Tee returns a writer for one output stream of the child: everything
// goes to w, and each complete line is read for a report. Give each
// stream a Tee of its own (their lines interleave).
func (a *Addrs) Tee(w io.Writer) io.Writer { return &tee{a: a, w: w} }

type tee struct {
	a       *Addrs
	w       io.Writer
	mu      sync.Mutex
	partial []byte // an unfinished line
}

func (t *tee) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.partial = append(t.partial, p...)
	var lines [][]byte
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, t.partial[:i])
		t.partial = t.partial[i+1:]
	}
	t.partial = slices.Clone(t.partial) // let the lines' array go
	t.mu.Unlock()
	for _, line := range lines {
		if name, addr, ok := Listening(line); ok {
			t.a.record(name, addr)
		}
	}
	return t.w.Write(p)
}

func (a *Addrs) record(name, addr string) {
	a.mu.Lock()
	if a.byName == nil {
		a.byName = map[string]string{}
	}
	a.byName[name] = addr
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
	a.mu.Unlock()
	if a.OnReport != nil {
		a.OnReport(name, addr)
	}
}

// Get is the address the listener name reported, "" before it did.
func (a *Addrs) Get(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byName[name]
}

// Wait returns the address of the listener name once reported. It fails
// when exited is closed first (the child is gone) or ctx ends.
func (a *Addrs) Wait(ctx context.Context, name string, exited <-chan struct{}) (string, error) {
	for {
		a.mu.Lock()
		addr := a.byName[name]
		if a.changed == nil {
			a.changed = make(chan struct{})
		}
		changed := a.changed
		a.mu.Unlock()
		if addr != "" {
			return addr, nil
		}
		select {
		case <-changed:
		case <-exited:
			if addr := a.Get(name); addr != "" {
				return addr, nil
			}
			return "", fmt.Errorf("exited without reporting its %q listener", name)
		case <-ctx.Done():
			return "", fmt.Errorf("no %q listener reported: %w", name, ctx.Err())
		}
	}
}
