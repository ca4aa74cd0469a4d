package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/coreos/go-oidc/v3/oidc"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

const rotatingTIs = `apiVersion: identity.signet.dev/v1alpha1
kind: TenantIdentity
metadata: {name: e2e-es, namespace: tenant-acme}
spec:
  org: acme
  siteID: 1b6f2a9e-0c3d-4e5f-8a7b-9c0d1e2f3a4b
  keys: {algorithm: ES256, rotationPeriod: 8s, prePublish: 3s, overlap: 4s, tokenTTL: 3s}
---
apiVersion: identity.signet.dev/v1alpha1
kind: TenantIdentity
metadata: {name: e2e-rs, namespace: tenant-acme}
spec:
  org: acme
  siteID: 5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170
  keys: {algorithm: RS256, rotationPeriod: 8s, prePublish: 3s, overlap: 4s, tokenTTL: 3s}
`

// TestRotationWithRealVerifiers is the acceptance scenario: a workload
// signs with whatever key the signing Secret holds, real verifiers check
// every live token on every tick, through scheduled rotations, a
// rotationTrigger, a revocation of the Active key and a SIGKILL of the
// manager while a successor is pre-published. No token within its
// lifetime may be refused.
func TestRotationWithRealVerifiers(t *testing.T) {
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	es := &tenant{name: "e2e-es", siteID: "1b6f2a9e-0c3d-4e5f-8a7b-9c0d1e2f3a4b", alg: "ES256", mintWith: "key.pem"}
	rs := &tenant{name: "e2e-rs", siteID: "5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170", alg: "RS256", mintWith: "key.jwk"}
	kubectl(t, rotatingTIs, "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = s.kubectlRun(nil, "delete", "tid", "-n", sampleNamespace, es.name, rs.name, "--wait=false")
	})

	for _, tn := range []*tenant{es, rs} {
		ti := waitReady(t, sampleNamespace, tn.name)
		tn.issuer = ti.Status.Issuer
		if want := s.publicBaseURL + identityv1alpha1.BasePath(sampleOrg, tn.siteID); tn.issuer != want {
			t.Fatalf("%s: issuer %q, want %q", tn.name, tn.issuer, want)
		}
		jwks := sameDocuments(t, sampleOrg, tn.siteID)
		age, err := maxAge(jwks.header.Get("Cache-Control"))
		if err != nil {
			t.Fatal(err)
		}
		// max-age = min(prePublish/2, --max-cache-age).
		if age != maxCacheAge {
			t.Fatalf("%s: served max-age %s, want %s", tn.name, age, maxCacheAge)
		}
		// keyfunc refreshes every served max-age, as a verifier honouring Cache-Control would.
		if tn.v, err = newVerifierSet(ctx, tn.issuer, tn.alg, docURL(s.plainBaseURL, sampleOrg, tn.siteID, pathJWKS), age); err != nil {
			t.Fatal(err)
		}
	}

	r := newRun(t, ctx, es, rs)
	r.start()
	defer r.halt()
	timeline := func(format string, args ...any) {
		t.Logf("%s "+format, append([]any{stamp(time.Now())}, args...)...)
	}

	// 1. Scheduled rotations: three on each tenant.
	if err := poll(3*rotationPeriod+30*time.Second, 100*time.Millisecond, "three scheduled rotations on each tenant", func() (bool, error) {
		return r.rotations(es) >= 3 && r.rotations(rs) >= 3, nil
	}); err != nil {
		t.Fatalf("%v (es %d, rs %d)", err, r.rotations(es), r.rotations(rs))
	}
	scheduled := map[string]int{es.name: r.rotations(es), rs.name: r.rotations(rs)}
	timeline("scheduled rotations seen: %v", scheduled)
	for _, tn := range []*tenant{es, rs} {
		sameDocuments(t, sampleOrg, tn.siteID)
	}

	// 2. rotationTrigger, requested while no successor is pending.
	if err := poll(2*rotationPeriod, 50*time.Millisecond, "a moment without a Next key on "+es.name, func() (bool, error) {
		st := r.statusOf(es)
		return nextKey(st) == nil && st.ActiveKeyID == r.signingKID(es), nil
	}); err != nil {
		t.Fatal(err)
	}
	before := r.signingKID(es)
	trigger := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	triggeredAt := time.Now() // no later than the trigger
	kubectl(t, "", "patch", "tid", es.name, "-n", sampleNamespace, "--type", "merge", "-p", `{"spec":{"rotationTrigger":"`+trigger+`"}}`)
	timeline("rotationTrigger=%s on %s (Active %s)", trigger, es.name, before)
	var triggered string
	if err := poll(10*time.Second, 50*time.Millisecond, "a successor published for the trigger", func() (bool, error) {
		st := r.statusOf(es)
		if nk := nextKey(st); nk != nil && st.LastRotationTrigger == trigger {
			triggered = nk.KID
			return true, nil
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := poll(prePublish+10*time.Second, 50*time.Millisecond, "the triggered key signing", func() (bool, error) {
		return r.signingKID(es) == triggered, nil
	}); err != nil {
		t.Fatalf("%v (signing with %s)", err, r.signingKID(es))
	}
	// A trigger still pre-publishes: the key signs no earlier than prePublish after the trigger.
	var firstSigned time.Time
	r.view(func() { firstSigned = es.firstSigned[triggered] })
	if d := firstSigned.Sub(triggeredAt); d < prePublish {
		t.Errorf("the triggered key %s signed %s after the trigger, before its pre-publication (%s) ended", triggered, d, prePublish)
	}
	timeline("the triggered key %s signs, %s after the trigger", triggered, firstSigned.Sub(triggeredAt).Round(time.Millisecond))

	// 3. Revoke the Active key while a pre-published Next (known to every
	// verifier: served for longer than max-age) can take over.
	revoked, successor := revokeActive(t, r, es)
	timeline("revoked %s; %s took over", revoked, successor)

	// 4. SIGKILL the manager while a successor is pre-published, keep it
	// down past that successor's planned activation, restart it.
	crashedTenant, crashed := crashMidRotation(t, r)

	// Keep going until the key the crash left Active has been retired and
	// removed, and both tenants rotated once more on schedule.
	more := map[string]int{es.name: r.rotations(es), rs.name: r.rotations(rs)}
	if err := poll(overlap+rotationPeriod+20*time.Second, 100*time.Millisecond, "the pre-crash Active key removed, and one more rotation on each tenant", func() (bool, error) {
		return !r.servedBy(crashedTenant, srvHTTPS, crashed) && !r.servedBy(crashedTenant, srvHTTP, crashed) &&
			r.rotations(es) > more[es.name] && r.rotations(rs) > more[rs.name], nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*tenant{es, rs} {
		sameDocuments(t, sampleOrg, tn.siteID)
	}
	r.halt()

	// Verdict.
	var failures []failure
	var problems []string
	r.view(func() { failures, problems = r.failures, r.problems })
	for _, f := range failures {
		t.Errorf("verification failure: %s", f)
	}
	for _, p := range problems {
		t.Errorf("invariant: %s", p)
	}
	r.checkTimelines(t, map[string]string{successor: "successor of a revoked key"})
	checkNoLeaks(t, ctx)

	r.view(func() {
		t.Logf("summary: %s; rotations: %s %d (%d scheduled before the trigger), %s %d (%d scheduled before the trigger); "+
			"tokens minted %d, every verifier accepted %d of them; verifications OK %v; failures %d; "+
			"ticks %d; JWKS fetch errors while the TLS manager was down %d; keyfunc refresh errors es %d rs %d",
			time.Since(started).Round(time.Second),
			es.name, len(es.activations)-1, scheduled[es.name], rs.name, len(rs.activations)-1, scheduled[rs.name],
			r.minted, r.tokensAllOK, r.verifications, len(r.failures), r.ticks, r.downErrors,
			es.v.refreshErrors.Load(), rs.v.refreshErrors.Load())
	})
}

// revokeActive revokes tn's Active key once a Next key has been served for
// longer than max-age (every verifier honouring it has it) and is not about
// to activate on its own. It checks that the kid leaves both servers at
// once, that the Next key takes over, and that tokens signed with the
// revoked key are refused by every verifier once it refreshed.
func revokeActive(t *testing.T, r *run, tn *tenant) (revoked, successor string) {
	t.Helper()
	if err := poll(2*rotationPeriod+10*time.Second, 20*time.Millisecond, "a Next key served for longer than max-age, not about to activate", func() (bool, error) {
		st := r.statusOf(tn)
		nk := nextKey(st)
		if nk == nil || st.ActiveKeyID != r.signingKID(tn) || nk.ActivatesAt == nil {
			return false, nil
		}
		first, ok := r.servedByAllSince(tn, nk.KID)
		lo, _, _ := r.activationBounds(tn, nk)
		if !ok || time.Since(first) < maxCacheAge+300*time.Millisecond || time.Until(lo) < 500*time.Millisecond {
			return false, nil
		}
		revoked, successor = st.ActiveKeyID, nk.KID
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	var probeKey *signingKey
	r.view(func() { probeKey = tn.keys[revoked] })
	if probeKey == nil {
		t.Fatalf("the workload never held the Active key %s", revoked)
	}
	ctx := context.Background()
	// A fresh token signed with the key, as whoever stole it would mint.
	probe := func() string {
		raw, _, err := probeKey.mint(tn.issuer, time.Now(), tokenTTL, "probe")
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, v := range verifierNames {
		if err := tn.v.verify(ctx, v, probe()); err != nil {
			t.Fatalf("before revocation, %s refuses a token of the Active key %s: %v", v, revoked, err)
		}
	}

	// The key Secret carries the short kid in its kid label (a kid is too
	// long, and may start or end with '-' or '_', so it is no label value).
	revokedShort, shortErr := keys.ShortKID(revoked)
	if shortErr != nil {
		t.Fatalf("short kid of %s: %v", revoked, shortErr)
	}
	revokedSecrets := func() ([]corev1.Secret, error) {
		var list corev1.SecretList
		err := s.client.List(ctx, &list, client.InNamespace(sampleNamespace), client.MatchingLabels{identityv1alpha1.LabelKID: revokedShort})
		return list.Items, err
	}
	// For contrast, so that the check after the revocation can fail: the
	// selector finds the key's Secret while the key lives.
	if found, err := revokedSecrets(); err != nil {
		t.Fatal(err)
	} else if len(found) != 1 {
		names := make([]string, 0, len(found))
		for _, sec := range found {
			names = append(names, sec.Name)
		}
		t.Fatalf("before revocation, %s=%s selects %d Secrets %v, want the Active key's one", identityv1alpha1.LabelKID, revokedShort, len(found), names)
	}

	r.markRevoked(tn, revoked)
	kubectl(t, "", "patch", "tid", tn.name, "-n", sampleNamespace, "--type", "merge", "-p", `{"spec":{"revokedKeyIDs":["`+revoked+`"]}}`)
	revokedAt := time.Now()

	// The kid leaves the documents at once (one reconcile and one watch event).
	if err := poll(10*time.Second, 20*time.Millisecond, "revoked kid "+revoked+" unpublished by both servers", func() (bool, error) {
		var gone int
		r.view(func() { gone = len(tn.goneAt[srvHTTPS]) + len(tn.goneAt[srvHTTP]) })
		return gone == 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	r.view(func() {
		t.Logf("revoked kid %s gone from https after %s, from http after %s",
			revoked, tn.goneAt[srvHTTPS][revoked].Sub(revokedAt).Round(time.Millisecond), tn.goneAt[srvHTTP][revoked].Sub(revokedAt).Round(time.Millisecond))
	})
	if err := poll(10*time.Second, 20*time.Millisecond, "the pre-published Next key signing after the revocation", func() (bool, error) {
		return r.signingKID(tn) == successor, nil
	}); err != nil {
		t.Fatalf("%v (signing with %s)", err, r.signingKID(tn))
	}
	// keyfunc forgets the key at its next refresh (every max-age).
	for _, v := range []string{vKeyfunc, vKeyfuncHT} {
		var last error
		if err := poll(maxCacheAge+5*time.Second, 50*time.Millisecond, v+" refusing the revoked key", func() (bool, error) {
			last = tn.v.verify(ctx, v, probe())
			return errors.Is(last, jwkset.ErrKeyNotFound), nil
		}); err != nil {
			t.Errorf("%v: last result %v", err, last)
		}
	}
	// go-oidc keeps its keys until a verification fails: a token of the
	// new key makes it refetch if it did not know that key; if it already
	// did, a token of a key nobody published makes it refetch.
	var fresh string
	r.view(func() { fresh = tn.latest[successor] })
	if fresh == "" {
		t.Fatal("no token of the successor to show go-oidc")
	}
	if err := tn.v.verify(ctx, vOIDC, fresh); err != nil {
		t.Errorf("go-oidc refuses the successor's token: %v", err)
	}
	if tn.v.verify(ctx, vOIDC, probe()) == nil {
		stranger, err := strangerKey()
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := stranger.mint(tn.issuer, time.Now(), tokenTTL, "stranger")
		if err != nil {
			t.Fatal(err)
		}
		if tn.v.verify(ctx, vOIDC, raw) == nil {
			t.Error("go-oidc accepted a token of a key nobody published")
		}
	}
	err := tn.v.verify(ctx, vOIDC, probe())
	var expired *oidc.TokenExpiredError
	switch {
	case err == nil:
		t.Errorf("go-oidc still accepts tokens of the revoked key %s after refetching the JWKS", revoked)
	case errors.As(err, &expired):
		t.Errorf("go-oidc refused the probe for expiry, not for its key: %v", err)
	default:
		t.Logf("go-oidc refuses the revoked key: %v", err)
	}

	// The revoked key's Secret is destroyed.
	if err := poll(10*time.Second, 50*time.Millisecond, "the revoked key's Secret ("+identityv1alpha1.LabelKID+"="+revokedShort+") deleted", func() (bool, error) {
		found, err := revokedSecrets()
		return len(found) == 0, err
	}); err != nil {
		t.Error(err)
	}
	return revoked, successor
}

// crashMidRotation SIGKILLs the TLS manager (the only controller) while a
// tenant has a pre-published Next key, keeps it down past that key's
// planned activation, restarts it with the same flags, and checks that it
// adopts what exists: the Next key activates, nothing published is lost,
// one Active key. It returns that tenant and the kid Active at the crash.
func crashMidRotation(t *testing.T, r *run) (*tenant, string) {
	t.Helper()
	var tn *tenant
	var next identityv1alpha1.KeyStatus
	var before identityv1alpha1.TenantIdentityStatus
	var due time.Time
	// Every Next key must have been served by both servers for longer
	// than max-age, so that every verifier had it before the crash: with
	// the only https server down, a timer-driven verifier (keyfunc) cannot
	// fetch it, and the restarted manager activates it at once if it is
	// overdue. The tenant whose Next key is found so is the one crashed
	// "mid-rotation"; its key must not be about to activate.
	safe := func() bool {
		for _, other := range r.tenants {
			if onk := nextKey(r.statusOf(other)); onk != nil {
				if first, ok := r.servedByAllSince(other, onk.KID); !ok || time.Since(first) < maxCacheAge+300*time.Millisecond {
					return false
				}
			}
		}
		return true
	}
	if err := poll(2*rotationPeriod+10*time.Second, 20*time.Millisecond, "a Next key served for longer than max-age, not yet active", func() (bool, error) {
		if !safe() {
			return false, nil
		}
		for _, cand := range r.tenants {
			st := r.statusOf(cand)
			nk := nextKey(st)
			if nk == nil || st.ActiveKeyID != r.signingKID(cand) {
				continue
			}
			if lo, hi, ok := r.activationBounds(cand, nk); ok && time.Until(lo) >= 300*time.Millisecond {
				tn, next, before, due = cand, *nk, st, hi
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	active := before.ActiveKeyID
	r.setTLSDown(true)
	if err := s.tlsMgr.kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("%s SIGKILLed %s: %s Active %s, Next %s due by %s", stamp(killedAt), s.tlsMgr.name, tn.name, active, next.KID, stamp(due))

	// Stay down until past the planned activation: the restarted manager
	// must catch up.
	time.Sleep(time.Until(due.Add(500 * time.Millisecond)))
	if r.signingKID(tn) != active {
		t.Errorf("the signing key changed while no controller ran: %s", r.signingKID(tn))
	}
	// The server-only replica serves on, everything that was published.
	for _, k := range before.Keys {
		if !r.servedBy(tn, srvHTTP, k.KID) {
			t.Errorf("with the controller down, the server-only replica stopped serving %s (%s)", k.KID, k.State)
		}
	}
	if err := s.tlsMgr.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := s.tlsMgr.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	r.setTLSDown(false)
	t.Logf("%s restarted %s after %s down", stamp(time.Now()), s.tlsMgr.name, time.Since(killedAt).Round(time.Millisecond))

	if err := poll(20*time.Second, 50*time.Millisecond, "the pre-published key "+next.KID+" signing after the restart", func() (bool, error) {
		return r.signingKID(tn) == next.KID, nil
	}); err != nil {
		t.Fatalf("%v (signing with %s)", err, r.signingKID(tn))
	}
	// No key lost: every key of the status before the crash is still
	// published now (the replaced one for its overlap).
	if err := poll(5*time.Second, 50*time.Millisecond, "every pre-crash key still published", func() (bool, error) {
		st := r.statusOf(tn)
		for _, k := range before.Keys {
			if !r.servedBy(tn, srvHTTPS, k.KID) {
				if k.State == identityv1alpha1.KeyStateRetired && k.RemovesAt != nil && time.Now().After(k.RemovesAt.Time) {
					continue // its overlap ended
				}
				return false, fmt.Errorf("%s (%s before the crash) not served; status %+v", k.KID, k.State, st.Keys)
			}
		}
		return st.ActiveKeyID == next.KID, fmt.Errorf("status Active %s", st.ActiveKeyID)
	}); err != nil {
		t.Error(err)
	}
	return tn, active
}

// checkNoLeaks: invariant 4 over what the suite can see: manager logs,
// statuses, events and ConfigMaps hold no private key material.
func checkNoLeaks(t *testing.T, ctx context.Context) {
	t.Helper()
	var secrets corev1.SecretList
	if err := s.client.List(ctx, &secrets, client.InNamespace(sampleNamespace), client.HasLabels{identityv1alpha1.LabelTenantIdentity}); err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets.Items {
		forbidden.addKey(sec.Name, sec.Data["key.pem"], sec.Data["key.jwk"])
	}
	var leaks []string
	leaks = append(leaks, scanLogs(s.tlsMgr.logs(), s.plainMgr.logs())...)
	// The metrics the README promises carry no key material, scraped
	// after the rotations, the revocation and the crash.
	metricLeaks, metricBytes, err := scanMetrics(ctx, s.tlsMgr)
	if err != nil {
		t.Error(err)
	}
	leaks = append(leaks, metricLeaks...)
	dump := func(where string, obj any) {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		leaks = append(leaks, forbidden.find(where, string(b))...)
	}
	var tis identityv1alpha1.TenantIdentityList
	var cms corev1.ConfigMapList
	var events eventsv1.EventList
	var coreEvents corev1.EventList
	for _, l := range []client.ObjectList{&tis, &cms, &events, &coreEvents} {
		if err := s.client.List(ctx, l, client.InNamespace(sampleNamespace)); err != nil {
			t.Fatal(err)
		}
	}
	dump("TenantIdentities", tis)
	dump("ConfigMaps", cms)
	dump("Events", events)
	dump("core Events", coreEvents)
	for _, l := range leaks {
		t.Error("leak: " + l)
	}
	t.Logf("no private key material in %d log files, %d bytes of metrics, %d TenantIdentities, %d ConfigMaps, %d events (%d private keys searched for)",
		len(s.tlsMgr.logs())+len(s.plainMgr.logs()), metricBytes, len(tis.Items), len(cms.Items), len(events.Items), forbidden.count())
	reasons := map[string]int{}
	for _, e := range events.Items {
		reasons[e.Type+"/"+e.Reason]++
	}
	t.Logf("events in %s by type/reason: %v", sampleNamespace, reasons)
}
