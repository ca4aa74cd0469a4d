package devnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// Relay listens on an address of the parent's own and relays each TCP
// connection, bytes unchanged (TLS included), to the current backend: the
// child's listener. Between two runs of the child it has no backend and
// closes what it accepts, as a stopped server would refuse it.
type Relay struct {
	ln net.Listener

	mu      sync.Mutex
	backend string
	conns   map[net.Conn]struct{}
	closed  bool
}

// NewRelay listens on addr (127.0.0.1:0 for any free port) and relays
// until Close.
func NewRelay(addr string) (*Relay, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, conns: map[net.Conn]struct{}{}}
	go r.serve()
	return r, nil
}

// Addr is the address the relay listens on.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// SetBackend sends new connections to addr; "" closes them at once.
// Connections already relayed stay with the backend they reached.
func (r *Relay) SetBackend(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.backend = addr
}

// Close stops listening and closes every relayed connection.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	return r.ln.Close()
}

func (r *Relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		go r.relay(c)
	}
}

// relay copies both ways until both sides are done, passing half-closes on.
func (r *Relay) relay(client net.Conn) {
	r.mu.Lock()
	backend := r.backend
	r.mu.Unlock()
	if backend == "" {
		_ = client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	if !r.track(client, server) {
		return
	}
	defer r.untrack(client, server)
	done := make(chan struct{})
	go func() {
		copyThenCloseWrite(server, client)
		close(done)
	}()
	copyThenCloseWrite(client, server)
	<-done
}

func copyThenCloseWrite(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if tcp, ok := dst.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
		return
	}
	_ = dst.Close()
}

// track registers a relayed pair, or closes it when the relay is closed.
func (r *Relay) track(conns ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *Relay) untrack(conns ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
		delete(r.conns, c)
	}
}
