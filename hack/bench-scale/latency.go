package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// latencyPhase, with N tenants present, measures one at a time:
//   - `kubectl apply` of one more tenant -> its jwks.json served (200),
//     from kubectl's start: what a user sees, kubectl's own start-up and
//     discovery included;
//   - a merge patch of rotationTrigger on a random existing tenant (from
//     this tool's client, so kubectl's start-up is not in it) -> a new
//     (Next) kid in its served jwks.json;
//
// each on the full manager's JWKS server and on the replica's, which the
// tool polls every pollEvery from the moment the write starts. It returns
// the tenants now present (the N and the applied ones).
func latencyPhase(ctx context.Context, e *env, cfg config, present []tenant, res *results) ([]tenant, error) {
	dir := filepath.Join(e.dir, "apply")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf("apply -> served: %d samples", cfg.samples)
	for j := range cfg.samples {
		t := newTenant(cfg.n+j, cfg.namespaces)
		s, err := applyOne(ctx, e, dir, t, cfg.sampleTimeout)
		if err != nil {
			return nil, err
		}
		res.Apply.add(s)
		present = append(present, t)
	}
	logf("  %s", res.Apply.summary())

	logf("rotationTrigger -> Next served: %d samples", cfg.samples)
	for j, i := range rand.Perm(cfg.n)[:min(cfg.samples, cfg.n)] {
		s, err := rotateOne(ctx, e, present[i], fmt.Sprintf("bench-%d", j), cfg.sampleTimeout)
		if err != nil {
			return nil, err
		}
		res.Rotate.add(s)
	}
	logf("  %s", res.Rotate.summary())
	return present, nil
}

// pollEvery is how often a sample polls the JWKS servers: the resolution
// of the latencies, at a cost of a few percent of one core.
const pollEvery = 5 * time.Millisecond

// sample is one latency: from the write's start until the manager's and
// the replica's servers serve the change, and until the write returned
// (the apiserver had accepted it).
type sample struct {
	Manager, Replica, Accepted time.Duration
	TimedOut                   bool
}

func applyOne(ctx context.Context, e *env, dir string, t tenant, timeout time.Duration) (sample, error) {
	path := filepath.Join(dir, t.name+".yaml")
	manifest := fmt.Sprintf(`apiVersion: identity.signet.dev/v1alpha1
kind: TenantIdentity
metadata: {name: %s, namespace: %s}
spec:
  org: %s
  siteID: %s
  keys: {algorithm: ES256}
`, t.name, t.ns, t.org, t.site)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		return sample{}, err
	}
	served := func(base string) bool { return status(ctx, base+t.jwksPath()) == http.StatusOK }
	apply := func() error { _, err := e.run(ctx, "apply", "-f", path); return err }
	return measure(ctx, e, timeout, served, apply)
}

func rotateOne(ctx context.Context, e *env, t tenant, trigger string, timeout time.Duration) (sample, error) {
	before, err := kids(ctx, e.manager.jwks+t.jwksPath())
	if err != nil {
		return sample{}, fmt.Errorf("%s/%s before the trigger: %w", t.ns, t.name, err)
	}
	served := func(base string) bool {
		now, err := kids(ctx, base+t.jwksPath())
		if err != nil {
			return false
		}
		for _, k := range now {
			if !slices.Contains(before, k) {
				return true
			}
		}
		return false
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"rotationTrigger":%q}}`, trigger))
	write := func() error { return e.admin.Patch(ctx, t.object(), patch) }
	return measure(ctx, e, timeout, served, write)
}

// measure starts write and polls served on both servers until both are
// true or timeout has passed.
func measure(ctx context.Context, e *env, timeout time.Duration, served func(base string) bool, write func() error) (sample, error) {
	type done struct {
		took time.Duration
		err  error
	}
	accepted := make(chan done, 1)
	start := time.Now()
	go func() {
		err := write()
		accepted <- done{time.Since(start), err}
	}()
	var s sample
	for s.Manager == 0 || s.Replica == 0 {
		if s.Manager == 0 && served(e.manager.jwks) {
			s.Manager = time.Since(start)
		}
		if s.Replica == 0 && served(e.replica.jwks) {
			s.Replica = time.Since(start)
		}
		if time.Since(start) > timeout {
			s.TimedOut = true
			s.Manager, s.Replica = orAt(s.Manager, timeout), orAt(s.Replica, timeout)
			break
		}
		time.Sleep(pollEvery)
	}
	w := <-accepted
	if w.err != nil {
		return s, w.err
	}
	s.Accepted = w.took
	return s, ctx.Err()
}

func orAt(d, timeout time.Duration) time.Duration {
	if d == 0 {
		return timeout
	}
	return d
}

// kids lists the kids of a served jwks.json.
func kids(ctx context.Context, url string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	out := make([]string, len(doc.Keys))
	for i, k := range doc.Keys {
		out[i] = k.Kid
	}
	return out, nil
}

// drain reads the rest of a body so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}
