package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// The scenario's timing: second-scale, so that a rotation takes 8 s.
const (
	rotationPeriod = 8 * time.Second
	prePublish     = 3 * time.Second
	overlap        = 4 * time.Second
	tokenTTL       = 3 * time.Second

	// tick is how often the workload mints a token and everything live is
	// verified again.
	tick = 200 * time.Millisecond
	// clockMargin: a token counts as live until exp minus this, for the
	// clock edges between minting, verifying and the second-granular exp.
	clockMargin = 300 * time.Millisecond
	// serverLag bounds how long a server takes to serve a ConfigMap
	// change (one watch event and one rebuild); the timeline checks allow
	// it and nothing else.
	serverLag = 500 * time.Millisecond
)

// Server names in observations.
const (
	srvHTTPS = "https"
	srvHTTP  = "http(server-only)"
)

var serverNames = []string{srvHTTPS, srvHTTP}

// tenant is one TenantIdentity and the workload that signs with its key.
type tenant struct {
	name, siteID, alg string
	mintWith          string // which file of the signing Secret the workload signs with
	issuer            string
	v                 *verifierSet

	// Owned by the loop goroutine.
	key    *signingKey
	tokens []*token
	seq    int

	// Guarded by run.mu.
	activations []string                    // kids the workload signed with, in order
	firstSigned map[string]time.Time        // kid -> first token minted with it
	lastSigned  map[string]time.Time        // kid -> last token minted with it
	lastRead    map[string]time.Time        // kid -> start of the last read of the signing Secret that held it
	lastFetch   map[string]time.Time        // server -> start of its last successful fetch
	served      map[string]map[string]*span // server -> kid -> when it was seen served
	current     map[string][]string         // server -> kids served at the last fetch
	revoked     map[string]time.Time        // kid -> when the test revoked it
	goneAt      map[string]map[string]time.Time
	status      identityv1alpha1.TenantIdentityStatus
	keys        map[string]*signingKey // every signing key seen, by kid
	latest      map[string]string      // kid -> the newest token minted with it
}

// span is what was seen of one kid on one server. Each bound is on the
// safe side for the checks: the kid was first served in (notBefore,
// first], last served at or after last, and gone by goneBy.
type span struct {
	notBefore time.Time // start of the last fetch before first that did not list it
	first     time.Time // end of the first fetch that listed it
	last      time.Time // start of the last fetch that listed it
	goneBy    time.Time // end of the first fetch after last that did not list it
}

type token struct {
	raw, kid    string
	minted, exp time.Time
	okBy        map[string]bool // verifiers that accepted it at least once
}

type failure struct {
	verifier, tenant, kid string
	minted, exp, at       time.Time
	err                   error
	served                map[string][]string
	activeKID             string
}

func (f failure) String() string {
	return fmt.Sprintf("%s rejected a live %s token: kid=%s minted=%s exp=%s at=%s active=%s served=%v: %v",
		f.verifier, f.tenant, f.kid, stamp(f.minted), stamp(f.exp), stamp(f.at), f.activeKID, f.served, f.err)
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

// run drives the workload, the observations and the verifiers, one tick
// at a time, on its own goroutine.
type run struct {
	t       *testing.T
	ctx     context.Context
	tenants []*tenant

	mu            sync.Mutex
	failures      []failure
	problems      []string
	minted        int
	verifications map[string]int
	tokensAllOK   int // tokens every verifier accepted
	tlsDown       bool
	downErrors    int
	ticks         int

	stop chan struct{}
	done chan struct{}
}

func newRun(t *testing.T, ctx context.Context, tenants ...*tenant) *run {
	for _, tn := range tenants {
		tn.firstSigned, tn.lastSigned = map[string]time.Time{}, map[string]time.Time{}
		tn.lastRead, tn.lastFetch = map[string]time.Time{}, map[string]time.Time{}
		tn.served, tn.current = map[string]map[string]*span{}, map[string][]string{}
		tn.revoked, tn.goneAt = map[string]time.Time{}, map[string]map[string]time.Time{}
		tn.keys, tn.latest = map[string]*signingKey{}, map[string]string{}
		for _, sv := range serverNames {
			tn.served[sv] = map[string]*span{}
		}
	}
	return &run{t: t, ctx: ctx, tenants: tenants, verifications: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (r *run) start() {
	go func() {
		defer close(r.done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			r.tick()
			select {
			case <-r.stop:
				return
			case <-tk.C:
			}
		}
	}()
}

func (r *run) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func (r *run) problem(format string, args ...any) {
	if len(r.problems) < 100 {
		r.problems = append(r.problems, fmt.Sprintf("%s ", stamp(time.Now()))+fmt.Sprintf(format, args...))
	}
}

func (r *run) tick() {
	r.mu.Lock()
	r.ticks++
	r.mu.Unlock()
	for _, tn := range r.tenants {
		r.workload(tn)
		r.observe(tn)
		r.verifyLive(tn)
	}
}

// workload reads the signing Secret (re-parsing it when it changed) and
// mints one token with the key it holds now.
func (r *run) workload(tn *tenant) {
	readAt := time.Now()
	k, err := readSigningKey(r.ctx, s.client, sampleNamespace, tn.name, tn.mintWith)
	if err != nil {
		r.mu.Lock()
		r.problem("%s: read signing Secret: %v", tn.name, err)
		r.mu.Unlock()
		return
	}
	if tn.key != nil && tn.key.kid == k.kid && tn.key.resourceVersion != k.resourceVersion {
		k = tn.key // same key, Secret rewritten: keep signing
	}
	tn.key = k
	now := time.Now()
	tn.seq++
	raw, exp, err := k.mint(tn.issuer, now, tokenTTL, fmt.Sprintf("%s-%d", tn.name, tn.seq))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.problem("%s: mint with %s: %v", tn.name, k.kid, err)
		return
	}
	if k.alg != tn.alg {
		r.problem("%s: signing Secret alg %s, want %s", tn.name, k.alg, tn.alg)
	}
	if _, seen := tn.firstSigned[k.kid]; !seen {
		tn.firstSigned[k.kid] = now
		tn.activations = append(tn.activations, k.kid)
		tn.keys[k.kid] = k
		if len(tn.activations) > 1 {
			r.t.Logf("%s %s: the workload now signs with %s (activation %d)", stamp(now), tn.name, k.kid, len(tn.activations))
		}
	}
	tn.lastSigned[k.kid] = now
	tn.lastRead[k.kid] = readAt
	tn.latest[k.kid] = raw
	tn.tokens = append(tn.tokens, &token{raw: raw, kid: k.kid, minted: now, exp: exp, okBy: map[string]bool{}})
	r.minted++
}

// observe fetches the JWKS from both servers and the status, and checks
// what must hold at every moment.
func (r *run) observe(tn *tenant) {
	type result struct {
		began, ended time.Time
		doc          served
	}
	res := map[string]result{}
	for _, sv := range serverNames {
		base, c := s.publicBaseURL, s.httpsClient
		if sv == srvHTTP {
			base, c = s.plainBaseURL, s.httpClient
		}
		began := time.Now()
		doc := fetch(r.ctx, c, docURL(base, sampleOrg, tn.siteID, pathJWKS))
		res[sv] = result{began, time.Now(), doc}
	}
	var ti identityv1alpha1.TenantIdentity
	tiErr := s.client.Get(r.ctx, client.ObjectKey{Namespace: sampleNamespace, Name: tn.name}, &ti)

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sv := range serverNames {
		rs := res[sv]
		if rs.doc.err != nil || rs.doc.status != http.StatusOK {
			if sv == srvHTTPS && r.tlsDown {
				r.downErrors++
				continue
			}
			r.problem("%s: %s JWKS: status %d err %v body %s", tn.name, sv, rs.doc.status, rs.doc.err, rs.doc.body)
			continue
		}
		tn.current[sv] = rs.doc.kids
		for kid, sp := range tn.served[sv] {
			if sp.goneBy.IsZero() && !slices.Contains(rs.doc.kids, kid) {
				sp.goneBy = rs.ended
			}
		}
		for _, kid := range rs.doc.kids {
			sp := tn.served[sv][kid]
			if sp == nil {
				sp = &span{notBefore: tn.lastFetch[sv], first: rs.ended}
				tn.served[sv][kid] = sp
			}
			sp.last, sp.goneBy = rs.began, time.Time{}
			if _, revoked := tn.revoked[kid]; revoked {
				if gone, ok := tn.goneAt[sv][kid]; ok && rs.began.After(gone) {
					r.problem("%s: revoked kid %s served again by %s after it was gone at %s", tn.name, kid, sv, stamp(gone))
				}
			}
		}
		for kid, at := range tn.revoked {
			if !slices.Contains(rs.doc.kids, kid) && rs.began.After(at) {
				if tn.goneAt[sv] == nil {
					tn.goneAt[sv] = map[string]time.Time{}
				}
				if _, ok := tn.goneAt[sv][kid]; !ok {
					tn.goneAt[sv][kid] = rs.ended
				}
			}
		}
		tn.lastFetch[sv] = rs.began
		// Invariant 1: the key the workload signs with is published.
		if tn.key != nil && !slices.Contains(rs.doc.kids, tn.key.kid) {
			if _, revoked := tn.revoked[tn.key.kid]; !revoked {
				r.problem("%s: the signing key %s is not served by %s (served %v)", tn.name, tn.key.kid, sv, rs.doc.kids)
			}
		}
	}
	if tiErr != nil {
		r.problem("%s: get TenantIdentity: %v", tn.name, tiErr)
		return
	}
	tn.status = ti.Status
	var active []string
	for _, k := range ti.Status.Keys {
		if k.State == identityv1alpha1.KeyStateActive {
			active = append(active, k.KID)
		}
	}
	if len(active) > 1 {
		r.problem("%s: status lists %d Active keys: %v", tn.name, len(active), active)
	}
}

// verifyLive verifies every live token of tn with every verifier.
func (r *run) verifyLive(tn *tenant) {
	live := tn.tokens[:0]
	for _, tk := range tn.tokens {
		if !time.Now().Before(tk.exp.Add(-clockMargin)) {
			continue // expired: dropped
		}
		live = append(live, tk)
	}
	tn.tokens = live
	for _, tk := range tn.tokens {
		r.mu.Lock()
		_, revoked := tn.revoked[tk.kid]
		r.mu.Unlock()
		if revoked {
			continue // revocation is checked on its own
		}
		for _, name := range verifierNames {
			err := tn.v.verify(r.ctx, name, tk.raw)
			at := time.Now()
			r.mu.Lock()
			_, revokedNow := tn.revoked[tk.kid]
			switch {
			case err == nil:
				r.verifications[name]++
				if !tk.okBy[name] {
					tk.okBy[name] = true
					if len(tk.okBy) == len(verifierNames) {
						r.tokensAllOK++
					}
				}
			case revokedNow, !at.Before(tk.exp.Add(-clockMargin)):
				// revoked meanwhile, or it expired while being verified
			default:
				served := map[string][]string{}
				for sv, kids := range tn.current {
					served[sv] = slices.Clone(kids)
				}
				r.failures = append(r.failures, failure{
					verifier: name, tenant: tn.name, kid: tk.kid, minted: tk.minted, exp: tk.exp, at: at,
					err: err, served: served, activeKID: tn.status.ActiveKeyID,
				})
			}
			r.mu.Unlock()
		}
	}
}

// markRevoked stops requiring tn's tokens signed with kid to verify.
func (r *run) markRevoked(tn *tenant, kid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tn.revoked[kid] = time.Now()
}

func (r *run) setTLSDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tlsDown = down
}

// view runs f with the observations locked.
func (r *run) view(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// rotations is how many times tn's workload switched keys.
func (r *run) rotations(tn *tenant) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(len(tn.activations)-1, 0)
}

// signingKID is the kid tn's workload signed with last.
func (r *run) signingKID(tn *tenant) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(tn.activations) == 0 {
		return ""
	}
	return tn.activations[len(tn.activations)-1]
}

// statusOf is tn's last observed status.
func (r *run) statusOf(tn *tenant) identityv1alpha1.TenantIdentityStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *tn.status.DeepCopy()
}

// servedBy reports whether server sv served kid at its last fetch.
func (r *run) servedBy(tn *tenant, sv, kid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(tn.current[sv], kid)
}

// servedByAllSince is since when every server has served kid: the latest
// of their first sightings.
func (r *run) servedByAllSince(tn *tenant, kid string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var since time.Time
	for _, sv := range serverNames {
		sp := tn.served[sv][kid]
		if sp == nil {
			return time.Time{}, false
		}
		if sp.first.After(since) {
			since = sp.first
		}
	}
	return since, true
}

// activationBounds bounds when a Next key really activates. The status
// says when to the second, rounded down; the key was published at most a
// tick (plus a request) before it was first seen served, and no later.
func (r *run) activationBounds(tn *tenant, nk *identityv1alpha1.KeyStatus) (lo, hi time.Time, ok bool) {
	if nk.ActivatesAt == nil {
		return lo, hi, false
	}
	lo, hi = nk.ActivatesAt.Time, nk.ActivatesAt.Add(time.Second)
	r.mu.Lock()
	first, seen := firstServedLocked(tn, nk.KID)
	r.mu.Unlock()
	if seen {
		if l := first.Add(prePublish - tick - 500*time.Millisecond); l.After(lo) {
			lo = l
		}
		if h := first.Add(prePublish); h.Before(hi) {
			hi = h
		}
	}
	return lo, hi, true
}

// firstServedLocked is when kid was first seen served by any server.
func firstServedLocked(tn *tenant, kid string) (time.Time, bool) {
	var first time.Time
	for _, sv := range serverNames {
		if sp := tn.served[sv][kid]; sp != nil && (first.IsZero() || sp.first.Before(first)) {
			first = sp.first
		}
	}
	return first, !first.IsZero()
}

// nextKey is the Next key of a status, if any.
func nextKey(st identityv1alpha1.TenantIdentityStatus) *identityv1alpha1.KeyStatus {
	for i := range st.Keys {
		if st.Keys[i].State == identityv1alpha1.KeyStateNext {
			return &st.Keys[i]
		}
	}
	return nil
}

// checkTimelines checks invariants 2 and 3 on what was observed. The
// observations bound the true times (a fetch or a read brackets each
// change), so each check fails only on a definite violation, however
// coarse the ticks were on a busy machine, and it is tight when they were
// not:
//   - a key signed (the workload read it from the signing Secret) at least
//     prePublish after a server started serving it, less serverLag;
//   - a key no longer served left a server at least overlap after it last
//     signed, and so every token signed with it (valid tokenTTL <= overlap)
//     stayed verifiable; revoked keys aside.
func (r *run) checkTimelines(t *testing.T, exempt map[string]string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tn := range r.tenants {
		var pre []string
		for i, kid := range tn.activations {
			if i == 0 || exempt[kid] != "" {
				continue // the first key is Active at once; a revoked key's successor at once
			}
			signed := tn.firstSigned[kid]
			for _, sv := range serverNames {
				sp := tn.served[sv][kid]
				switch {
				case sp == nil:
					t.Errorf("%s: key %s signed from %s but never seen served by %s", tn.name, kid, stamp(signed), sv)
				case sp.notBefore.IsZero():
					t.Errorf("%s: key %s served by %s from the first fetch on", tn.name, kid, sv)
				case signed.Sub(sp.notBefore) < prePublish-serverLag:
					t.Errorf("%s: key %s signed by %s, but %s did not serve it at %s: pre-published at most %s (prePublish %s)",
						tn.name, kid, stamp(signed), sv, stamp(sp.notBefore), signed.Sub(sp.notBefore).Round(time.Millisecond), prePublish)
				default:
					pre = append(pre, fmt.Sprintf("%s@%s:%s", kid[:8], sv, signed.Sub(sp.first).Round(100*time.Millisecond)))
				}
			}
		}
		var kept []string
		for kid, last := range tn.lastSigned {
			if _, revoked := tn.revoked[kid]; revoked {
				continue
			}
			for _, sv := range serverNames {
				sp := tn.served[sv][kid]
				if sp == nil {
					t.Errorf("%s: key %s never seen served by %s", tn.name, kid, sv)
					continue
				}
				if sp.goneBy.IsZero() {
					continue // still published
				}
				if upper := sp.goneBy.Sub(tn.lastRead[kid]); upper < overlap {
					t.Errorf("%s: key %s was still signing at %s and %s no longer served it at %s: overlap %s cut short (tokens valid %s, last minted %s)",
						tn.name, kid, stamp(tn.lastRead[kid]), sv, stamp(sp.goneBy), overlap, tokenTTL, stamp(last))
				}
				kept = append(kept, fmt.Sprintf("%s@%s:%s", kid[:8], sv, sp.last.Sub(last).Round(100*time.Millisecond)))
			}
		}
		sort.Strings(kept)
		t.Logf("%s: keys were served before they first signed for about: %s (prePublish %s)", tn.name, strings.Join(pre, " "), prePublish)
		t.Logf("%s: removed keys stayed served after their last use for about: %s (overlap %s, tokenTTL %s)",
			tn.name, strings.Join(kept, " "), overlap, tokenTTL)
	}
}
