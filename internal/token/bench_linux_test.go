package token

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/signet-dev/signet/internal/keys"
)

// BenchmarkMintPaired runs the handler and the bare go-jose sign in
// alternating batches on one locked OS thread, and times each batch both
// by the wall clock and by the thread's CPU clock. On a shared machine the
// load changes from one second to the next; batches a few milliseconds
// apart see the same load, so their ratio holds where two separate
// benchmarks' do not. Run with -cpu 1:
//
//	go test -run '^$' -bench MintPaired -cpu 1 ./internal/token/
//
// It reports tokens per CPU-second of each (tokens per second per core)
// and handler/go-jose, the handler's throughput as a share of the bare
// sign's, by CPU time and by wall time.
func BenchmarkMintPaired(b *testing.B) {
	for _, alg := range []string{keys.ES256, keys.RS256} {
		b.Run(alg, func(b *testing.B) {
			batch := 16
			if keys.IsRSA(alg) {
				batch = 2
			}
			handler := newBenchHandler(b, alg)
			bare := newBenchSign(b, alg)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var hCPU, jCPU, hWall, jWall time.Duration
			for b.Loop() {
				w0, c0 := time.Now(), threadCPU(b)
				for range batch {
					handler()
				}
				w1, c1 := time.Now(), threadCPU(b)
				for range batch {
					bare()
				}
				w2, c2 := time.Now(), threadCPU(b)
				hCPU, jCPU = hCPU+c1-c0, jCPU+c2-c1
				hWall, jWall = hWall+w1.Sub(w0), jWall+w2.Sub(w1)
			}
			n := float64(b.N * batch)
			b.ReportMetric(n/hCPU.Seconds(), "handler-tokens/cpu-s")
			b.ReportMetric(n/jCPU.Seconds(), "go-jose-tokens/cpu-s")
			b.ReportMetric(jCPU.Seconds()/hCPU.Seconds(), "ratio-cpu")
			b.ReportMetric(jWall.Seconds()/hWall.Seconds(), "ratio-wall")
		})
	}
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// newBenchHandler is benchHandler's set-up, returning one request's work.
func newBenchHandler(b *testing.B, alg string) func() {
	serve := benchHandlerSetup(b, alg)
	return func() {
		if code := serve(); code != http.StatusOK {
			b.Fatalf("status %d", code)
		}
	}
}
