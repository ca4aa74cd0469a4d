package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// restartPhase restarts the full manager (SIGTERM, then the same command
// again) with every tenant present, and measures: the time until the new
// process has reconciled every tenant once, the writes it made meanwhile,
// and whether the replica kept serving every document throughout.
func restartPhase(ctx context.Context, e *env, cfg config, present []tenant, res *results) error {
	r := &res.Restart
	r.Tenants = len(present)
	wait, cancel := context.WithTimeout(ctx, cfg.readyTimeout)
	defer cancel()
	if _, err := allServed(wait, e.replica.jwks, present, time.Now()); err != nil {
		return fmt.Errorf("before the restart, the replica: %w", err)
	}
	poll := pollReplica(ctx, e.replica.jwks, present)
	defer poll.stop()

	r.OldManagerCPU, _ = cpuSeconds(e.manager.pid())
	logf("restart: SIGTERM to the manager (%d tenants present)", len(present))
	sigterm := time.Now()
	if err := e.manager.stop(); err != nil {
		return err
	}
	r.Stop = dur(time.Since(sigterm))
	started := time.Now()
	if err := e.manager.start(ctx, cfg.readyTimeout); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	r.StartToReady = dur(time.Since(started))
	logf("  stopped in %s, started and ready in %s; waiting for %d reconciles", r.Stop, r.StartToReady, len(present))

	m, err := waitReconciles(wait, e.manager.metrics, len(present), started)
	if err != nil {
		return err
	}
	r.StartToReverified = dur(time.Since(started))
	r.SigtermToReverified = dur(time.Since(sigterm))
	if err := recordReverified(e, res, m, started, poll); err != nil {
		return err
	}
	logf("  re-verified %d after %s from start (%s from SIGTERM); client writes %v; audited writes %v; replica %d requests, %d not 200",
		r.Reconciles, r.StartToReverified, r.SigtermToReverified, r.ClientWrites, r.AuditWrites, r.Replica.Requests, r.Replica.Non200)
	return nil
}

// recordReverified takes the restarted manager's figures once it has
// re-verified every tenant: CPU, RSS, its metrics, its audited writes and
// what the replica answered meanwhile.
func recordReverified(e *env, res *results, m metrics, started time.Time, poll *replicaPoll) error {
	r := &res.Restart
	r.ManagerCPU, _ = cpuSeconds(e.manager.pid())
	res.Memory.RestartedRSS = e.manager.rss()
	snap := m.snapshot("restarted manager: all re-verified")
	res.Snapshots = append(res.Snapshots, snap)
	r.Reconciles, r.ReconcileErrors = snap.Reconciles, snap.ReconcileErrors
	r.ClientWrites = map[string]int{}
	for _, verb := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		r.ClientWrites[verb] = snap.Requests[verb]
	}
	// Events are sent asynchronously and status writes may trail the
	// count by a moment: give them a little time before counting.
	time.Sleep(2 * time.Second)
	r.Replica = poll.stop()
	var err error
	r.AuditWrites, err = auditWrites(e.auditLog, started)
	return err
}

// waitReconciles scrapes the manager's metrics until the TenantIdentity
// controller has reconciled n times (every tenant once, if none twice).
func waitReconciles(ctx context.Context, metricsURL string, n int, start time.Time) (metrics, error) {
	tick := time.Now()
	for {
		m, err := scrape(ctx, metricsURL+"/metrics")
		if err == nil && int(m.sum("controller_runtime_reconcile_total", "controller", controllerName)) >= n {
			return m, nil
		}
		if time.Since(tick) > 10*time.Second {
			tick = time.Now()
			logf("  %v reconciles after %s", m.sum("controller_runtime_reconcile_total", "controller", controllerName), time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("restart: fewer than %d reconciles (last scrape error: %w): %w", n, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// replicaPoll GETs every tenant's jwks.json on the replica, one after
// the other, over and over, until stopped after one full pass at least,
// at most pollRate a second: on
// two cores a poll at full speed would take a core from the manager it
// is meant to watch.
type replicaPoll struct {
	stopCh chan struct{}
	once   sync.Once
	done   chan struct{}
	res    unserved
}

// unserved is what the replica answered during the restart.
type unserved struct {
	Requests int `json:"requests"`
	Passes   int `json:"passes"` // complete passes over all tenants
	Non200   int `json:"non200"`
	Tenants  int `json:"tenants"` // distinct tenants with at least one non-200
}

const (
	pollRate  = 500 // requests per second
	pollBatch = 10  // requests per tick
)

func pollReplica(ctx context.Context, base string, ts []tenant) *replicaPoll {
	p := &replicaPoll{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		bad := map[int]bool{}
		defer func() { p.res.Tenants = len(bad) }()
		tick := time.NewTicker(time.Second / pollRate * pollBatch)
		defer tick.Stop()
		stopCh := p.stopCh
		for {
			for i, t := range ts {
				if i%pollBatch == 0 {
					select {
					case <-stopCh:
						// Asked to stop: only once every tenant was asked
						// at least once (a restart can be quicker than a pass).
						if p.res.Passes > 0 {
							return
						}
						stopCh = nil
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
				p.res.Requests++
				if status(ctx, base+t.jwksPath()) != http.StatusOK {
					p.res.Non200++
					bad[i] = true
				}
			}
			p.res.Passes++
			if stopCh == nil {
				return
			}
		}
	}()
	return p
}

func (p *replicaPoll) stop() unserved {
	p.once.Do(func() { close(p.stopCh) })
	<-p.done
	return p.res
}

// auditWrites counts the full manager's writes received since `since`, by
// "VERB resource[/subresource]", from the apiserver's audit log.
func auditWrites(path string, since time.Time) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer func() { _ = f.Close() }()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var ev struct {
			Verb string
			User struct{ Username string }
			// RequestReceivedTimestamp is RFC 3339 with microseconds.
			RequestReceivedTimestamp time.Time
			ObjectRef                struct{ Resource, Subresource string }
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.User.Username != managerUser || ev.RequestReceivedTimestamp.Before(since) {
			continue
		}
		key := ev.Verb + " " + ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			key += "/" + ev.ObjectRef.Subresource
		}
		out[key]++
	}
	return out, sc.Err()
}
