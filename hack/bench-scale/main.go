// Command bench-scale measures signet at scale the way a new user would run
// it: a real kube-apiserver and etcd (envtest), the CRD and RBAC installed
// with kubectl, the manager binary built from ./cmd/manager and started as a
// process of its own with the contract's flags, beside a second,
// server-only replica (--controllers=false). It then creates N
// TenantIdentities at once and prints the figures of issue 9's targets:
//
//	make bench-scale                                   # N=1000, one namespace
//	make bench-scale BENCH_SCALE_ARGS="-n 10000 -out /tmp/scale"
//	go run ./hack/bench-scale -n 200 -manager-arg=--kube-api-qps=500
//
// The phases, one file each: setup.go (control plane and processes),
// create.go (N tenants at once, until Ready), latency.go (apply -> served,
// rotationTrigger -> Next served), restart.go (restart of the full manager
// with N present), report.go (the table, JSON and markdown). Nothing here is
// a test: it measures, and docs/performance.md records what it printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type config struct {
	n             int
	namespaces    int
	managerArgs   []string
	replicaArgs   []string
	out           string
	keep          bool
	samples       int
	concurrency   int
	readyTimeout  time.Duration
	sampleTimeout time.Duration
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench-scale", flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 1000, "TenantIdentities to create at once")
	fs.IntVar(&c.namespaces, "namespaces", 1, "tenant namespaces to spread them over (one org each)")
	fs.Var((*stringList)(&c.managerArgs), "manager-arg", "extra flag for the full manager, e.g. -manager-arg=--kube-api-qps=200 (repeatable)")
	fs.Var((*stringList)(&c.replicaArgs), "replica-arg", "extra flag for the server-only replica, e.g. -replica-arg=--pprof-bind-address=127.0.0.1:6061 (repeatable)")
	fs.StringVar(&c.out, "out", "", "write <out>.json and <out>.md besides printing the summary")
	fs.BoolVar(&c.keep, "keep", false, "at the end keep the control plane, both managers and the work directory running until Ctrl-C")
	fs.IntVar(&c.samples, "samples", 30, "samples of each latency (apply -> served, rotationTrigger -> served)")
	fs.IntVar(&c.concurrency, "concurrency", 32, "concurrent creates")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 30*time.Minute, "give up waiting for all Ready, or for a restart's re-verification, after this long")
	fs.DurationVar(&c.sampleTimeout, "sample-timeout", 60*time.Second, "give up one latency sample after this long (counted as a timeout)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q: flags only", fs.Args())
	case c.n < 1:
		return c, fmt.Errorf("-n=%d: need at least one tenant", c.n)
	case c.namespaces < 1 || c.namespaces > c.n:
		return c, fmt.Errorf("-namespaces=%d: want 1..%d (-n)", c.namespaces, c.n)
	case c.samples < 1:
		return c, fmt.Errorf("-samples=%d: want at least 1", c.samples)
	case c.concurrency < 1:
		return c, fmt.Errorf("-concurrency=%d: want at least 1", c.concurrency)
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		stop()
		os.Exit(1)
	}
}

// run is the whole benchmark, phase after phase; everything it starts is
// stopped by the deferred cleanups, also on error or Ctrl-C.
func run(ctx context.Context, cfg config) (err error) {
	res := &results{N: cfg.n, Namespaces: cfg.namespaces, Samples: cfg.samples}
	res.Machine = machineAtStart()
	load := startLoadSampler(ctx)
	started := time.Now()

	env, err := setUp(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			env.keepDir = true // its logs say why
		}
		env.tearDown()
	}()
	res.ManagerCommand = env.manager.commandLine()
	res.ReplicaCommand = env.replica.commandLine()
	res.Memory.ManagerRSS0, res.Memory.ReplicaRSS0 = env.manager.rss(), env.replica.rss()
	logf("both managers ready with no tenants: RSS %s (manager), %s (replica)",
		mib(res.Memory.ManagerRSS0), mib(res.Memory.ReplicaRSS0))
	res.CPU.add("setup (N=0, ready)", env.cpu())
	if err := res.snapshot(ctx, env, "setup: ready, no tenants"); err != nil {
		return err
	}

	present, err := createPhase(ctx, env, cfg, res)
	if err != nil {
		return err
	}
	res.CPU.add("create N until all Ready and served", env.cpu())
	if err := res.snapshot(ctx, env, "create: all Ready and served"); err != nil {
		return err
	}

	if present, err = latencyPhase(ctx, env, cfg, present, res); err != nil {
		return err
	}
	res.CPU.add("latency samples", env.cpu())
	if err := res.snapshot(ctx, env, "latency samples"); err != nil {
		return err
	}

	if err := restartPhase(ctx, env, cfg, present, res); err != nil {
		return err
	}
	res.CPU.add("restart until re-verified", env.cpu())

	res.Duration = dur(time.Since(started))
	res.Machine.finish(load.stop())
	res.print(os.Stdout)
	if cfg.out != "" {
		if err := res.write(cfg.out); err != nil {
			return err
		}
		logf("wrote %s.json and %s.md", cfg.out, cfg.out)
	}
	if cfg.keep {
		env.keepDir = true
		env.printAccess(present)
		<-ctx.Done()
	}
	return nil
}

func (r *results) snapshot(ctx context.Context, e *env, at string) error {
	s, err := takeSnapshot(ctx, e.manager, at)
	r.Snapshots = append(r.Snapshots, s)
	return err
}

// logf prints progress on stderr, so stdout is only the summary.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
