package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// The token API end to end: workloads that never see a key get their
// tokens from the TLS manager's token listener (--token-bind-address
// 127.0.0.1:0, reported as the listener "token"), every 200 ms,
// through scheduled rotations, a rotationTrigger and a revocation of the
// Active key; go-oidc and keyfunc (on both servers) verify every live
// token on every tick. One tenant has signingSecret.enabled: false: its
// keys exist only in signet's own key Secrets.

// The token tenants' timing: longer than the signing-Secret scenario's, so
// that a Next key is served for longer than max-age well before it
// activates (the moment a revocation hands over to it).
const (
	tokRotationPeriod = 10 * time.Second
	tokPrePublish     = 4 * time.Second
	tokTokenTTL       = 3 * time.Second
)

const tokenTIs = `apiVersion: identity.signet.dev/v1alpha1
kind: TenantIdentity
metadata: {name: e2e-tok-es, namespace: tenant-acme}
spec:
  org: acme
  siteID: 3c2b1a09-8f7e-4d6c-b5a4-938271605f4e
  keys: {algorithm: ES256, rotationPeriod: 10s, prePublish: 4s, overlap: 5s, tokenTTL: 3s}
  signingSecret: {enabled: false}
  tokens: {allowedAudiences: [e2e-verifier, other.example], defaultAudience: e2e-verifier, subjectPrefix: "spiffe://acme.example/"}
---
apiVersion: identity.signet.dev/v1alpha1
kind: TenantIdentity
metadata: {name: e2e-tok-rs, namespace: tenant-acme}
spec:
  org: acme
  siteID: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
  keys: {algorithm: RS256, rotationPeriod: 10s, prePublish: 4s, overlap: 5s, tokenTTL: 3s}
  tokens: {allowedAudiences: [e2e-verifier], defaultAudience: e2e-verifier}
`

// tokenRBAC: one ServiceAccount per tenant, each granted its own
// TenantIdentity only, as a tenant admin writes it.
func tokenRBAC(sa, ti string) string {
	return `apiVersion: v1
kind: ServiceAccount
metadata: {name: ` + sa + `, namespace: tenant-acme}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ` + sa + `, namespace: tenant-acme}
rules: [{apiGroups: [identity.signet.dev], resources: [tenantidentities/token], verbs: [create], resourceNames: [` + ti + `]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ` + sa + `, namespace: tenant-acme}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ` + sa + `}
subjects: [{kind: ServiceAccount, name: ` + sa + `, namespace: tenant-acme}]
`
}

// apiTenant is one TenantIdentity whose workload gets tokens from the API.
type apiTenant struct {
	name, siteID, alg, sa string
	issuer                string
	bearer                string // the workload's service account token (audience signet)
	v                     *verifierSet

	// Guarded by tokenRun.mu.
	live     []*apiToken
	kids     []string             // kids the API signed with, in order
	firstBy  map[string]time.Time // kid -> first token of it
	lastBy   map[string]time.Time // kid -> last token of it
	revoked  map[string]time.Time
	status   identityv1alpha1.TenantIdentityStatus
	rejected []string // non-200 answers
}

type apiToken struct {
	raw, kid string
	exp      time.Time
}

// tokenRun mints and verifies on its own goroutine, one tick at a time.
type tokenRun struct {
	ctx      context.Context
	url      string
	tenants  []*apiTenant
	mu       sync.Mutex
	minted   int
	verified int
	failures []string
	sample   []string // some minted tokens, for the log scan
	stop     chan struct{}
	done     chan struct{}
}

func TestTokenAPIAcrossRotations(t *testing.T) {
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	addr, err := s.tlsMgr.addr(ctx, "token")
	if err != nil {
		t.Fatal(err)
	}
	es := &apiTenant{name: "e2e-tok-es", siteID: "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e", alg: "ES256", sa: "e2e-tok-es-workload"}
	rs := &apiTenant{name: "e2e-tok-rs", siteID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", alg: "RS256", sa: "e2e-tok-rs-workload"}
	tenants := []*apiTenant{es, rs}
	kubectl(t, tokenTIs+"---\n"+tokenRBAC(es.sa, es.name)+"---\n"+tokenRBAC(rs.sa, rs.name), "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = s.kubectlRun(nil, "delete", "tid", "-n", sampleNamespace, es.name, rs.name, "--wait=false")
	})
	cs, err := kubernetes.NewForConfig(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range tenants {
		ti := waitReady(t, sampleNamespace, tn.name)
		tn.issuer = ti.Status.Issuer
		tn.firstBy, tn.lastBy, tn.revoked = map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}
		// What the kubelet projects into the workload's pod.
		tr, err := cs.CoreV1().ServiceAccounts(sampleNamespace).CreateToken(ctx, tn.sa, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{"signet"}, ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tn.bearer = tr.Status.Token
		jwks := sameDocuments(t, sampleOrg, tn.siteID)
		age, err := maxAge(jwks.header.Get("Cache-Control"))
		if err != nil {
			t.Fatal(err)
		}
		if tn.v, err = newVerifierSet(ctx, tn.issuer, tn.alg, docURL(s.plainBaseURL, sampleOrg, tn.siteID, pathJWKS), age); err != nil {
			t.Fatal(err)
		}
	}
	checkNoSigningSecret(t, es.name)

	r := &tokenRun{ctx: ctx, url: "https://" + addr, tenants: tenants, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	halted := false
	halt := func() {
		if !halted {
			halted = true
			close(r.stop)
			<-r.done
		}
	}
	defer halt()

	// 1. Two scheduled rotations on each tenant.
	if err := poll(3*tokRotationPeriod+30*time.Second, 100*time.Millisecond, "two scheduled rotations on each tenant, seen in the API's tokens", func() (bool, error) {
		return r.rotations(es) >= 2 && r.rotations(rs) >= 2, nil
	}); err != nil {
		t.Fatalf("%v (es %d, rs %d)", err, r.rotations(es), r.rotations(rs))
	}

	// 2. rotationTrigger on rs, while no successor is pending: the API
	// switches to the successor once it activates, no earlier.
	if err := poll(2*tokRotationPeriod, 50*time.Millisecond, "a moment without a Next key on "+rs.name, func() (bool, error) {
		return nextKey(r.statusOf(rs)) == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	triggeredAt := time.Now()
	trigger := fmt.Sprintf("e2e-token-%d", triggeredAt.UnixNano())
	kubectl(t, "", "patch", "tid", rs.name, "-n", sampleNamespace, "--type", "merge", "-p", `{"spec":{"rotationTrigger":"`+trigger+`"}}`)
	var triggered string
	if err := poll(10*time.Second, 50*time.Millisecond, "the triggered successor published", func() (bool, error) {
		if st := r.statusOf(rs); nextKey(st) != nil && st.LastRotationTrigger == trigger {
			nk := nextKey(st)
			triggered = nk.KID
			return true, nil
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := poll(tokPrePublish+10*time.Second, 50*time.Millisecond, "the API signing with the triggered key", func() (bool, error) {
		return r.firstSigned(rs, triggered) != time.Time{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := r.firstSigned(rs, triggered).Sub(triggeredAt); d < tokPrePublish {
		t.Errorf("the triggered key signed %s after the trigger, before its pre-publication (%s) ended", d, tokPrePublish)
	}

	// 3. Revoke es's Active key once a Next key has been served for longer
	// than max-age (every verifier has it) and will not activate on its own
	// within a second: the API switches to it at once, and never signs
	// with the revoked key again.
	var revoked, successor string
	if err := poll(2*tokRotationPeriod+10*time.Second, 20*time.Millisecond, "a Next key on "+es.name+" served for longer than max-age", func() (bool, error) {
		st := r.statusOf(es)
		nk := nextKey(st)
		if nk == nil || nk.PublishedAt == nil || nk.ActivatesAt == nil {
			return false, nil
		}
		if time.Since(nk.PublishedAt.Time) < maxCacheAge+serverLag+300*time.Millisecond || time.Until(nk.ActivatesAt.Time) < time.Second {
			return false, nil
		}
		revoked, successor = st.ActiveKeyID, nk.KID
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	r.markRevoked(es, revoked)
	kubectl(t, "", "patch", "tid", es.name, "-n", sampleNamespace, "--type", "merge", "-p", `{"spec":{"revokedKeyIDs":["`+revoked+`"]}}`)
	revokedAt := time.Now()
	if err := poll(10*time.Second, 20*time.Millisecond, "the API signing with "+successor+" after the revocation", func() (bool, error) {
		return r.firstSigned(es, successor) != time.Time{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked %s at %s; the API signed with %s %s later", revoked, stamp(revokedAt), successor, r.firstSigned(es, successor).Sub(revokedAt).Round(time.Millisecond))

	// 4. One more scheduled rotation on each.
	more := map[*apiTenant]int{es: r.rotations(es), rs: r.rotations(rs)}
	if err := poll(2*tokRotationPeriod+10*time.Second, 100*time.Millisecond, "one more rotation on each tenant", func() (bool, error) {
		return r.rotations(es) > more[es] && r.rotations(rs) > more[rs], nil
	}); err != nil {
		t.Fatal(err)
	}
	halt()

	// Verdict.
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.failures {
		t.Errorf("verification failure: %s", f)
	}
	for _, tn := range tenants {
		for _, rej := range tn.rejected {
			t.Errorf("%s: the token API refused the workload: %s", tn.name, rej)
		}
	}
	// After the revocation reached the server (one watch event), no token
	// of the revoked key.
	if last := es.lastBy[revoked]; last.After(revokedAt.Add(serverLag + time.Second)) {
		t.Errorf("a token of the revoked key %s at %s, %s after its revocation", revoked, stamp(last), last.Sub(revokedAt))
	}
	checkNoSigningSecret(t, es.name)
	checkKeysOnlyInKeySecrets(t, ctx, es.name)
	checkTokensNotLogged(t, append(r.sample, es.bearer, rs.bearer))
	t.Logf("summary: %s; es signed with %d keys %v, rs with %d keys %v; %d tokens minted, %d verifications, %d failures",
		time.Since(started).Round(time.Second), len(es.kids), es.kids, len(rs.kids), rs.kids, r.minted, r.verified, len(r.failures))
	if r.verified == 0 || r.minted < 100 {
		t.Errorf("too little happened: %d tokens, %d verifications", r.minted, r.verified)
	}
}

// loop mints a token per tenant every tick and verifies every live one.
func (r *tokenRun) loop() {
	defer close(r.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		for _, tn := range r.tenants {
			r.observe(tn)
			r.mint(tn)
			r.verifyLive(tn)
		}
	}
}

// mint asks the token API for a token of tn's default audience and
// lifetime.
func (r *tokenRun) mint(tn *apiTenant) {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	url := r.url + identityv1alpha1.BasePath(sampleOrg, tn.siteID) + "/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		r.reject(tn, err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+tn.bearer)
	resp, err := s.httpsClient.Do(req)
	if err != nil {
		r.reject(tn, err.Error())
		return
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		r.reject(tn, fmt.Sprintf("%s %d %s", stamp(time.Now()), resp.StatusCode, body))
		return
	}
	var res struct {
		Token, ExpiresAt, KeyID string
	}
	if err := json.Unmarshal(body, &res); err != nil {
		r.reject(tn, err.Error())
		return
	}
	exp, err := time.Parse(time.RFC3339, res.ExpiresAt)
	if err != nil {
		r.reject(tn, err.Error())
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.minted++
	if r.minted%25 == 1 {
		r.sample = append(r.sample, res.Token)
	}
	if len(tn.kids) == 0 || tn.kids[len(tn.kids)-1] != res.KeyID {
		tn.kids = append(tn.kids, res.KeyID)
	}
	if _, ok := tn.firstBy[res.KeyID]; !ok {
		tn.firstBy[res.KeyID] = now
	}
	tn.lastBy[res.KeyID] = now
	tn.live = append(tn.live, &apiToken{raw: res.Token, kid: res.KeyID, exp: exp})
}

func (r *tokenRun) reject(tn *apiTenant, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tn.rejected = append(tn.rejected, what)
}

// verifyLive verifies every token of tn within its life (and not of a
// revoked key) with every verifier.
func (r *tokenRun) verifyLive(tn *apiTenant) {
	r.mu.Lock()
	live := tn.live[:0]
	for _, tk := range tn.live {
		if time.Now().Before(tk.exp.Add(-clockMargin)) {
			live = append(live, tk)
		}
	}
	tn.live = live
	check := make([]*apiToken, 0, len(live))
	for _, tk := range live {
		if _, revoked := tn.revoked[tk.kid]; !revoked {
			check = append(check, tk)
		}
	}
	r.mu.Unlock()
	for _, tk := range check {
		for _, name := range verifierNames {
			err := tn.v.verify(r.ctx, name, tk.raw)
			at := time.Now()
			r.mu.Lock()
			switch {
			case err == nil:
				r.verified++
			case !at.Before(tk.exp.Add(-clockMargin)):
				// expired while being verified
			default:
				r.failures = append(r.failures, fmt.Sprintf("%s rejected a live %s token of %s (exp %s) at %s: %v",
					name, tn.name, tk.kid, stamp(tk.exp), stamp(at), err))
			}
			r.mu.Unlock()
		}
	}
}

// observe reads tn's status.
func (r *tokenRun) observe(tn *apiTenant) {
	var ti identityv1alpha1.TenantIdentity
	if err := s.client.Get(r.ctx, client.ObjectKey{Namespace: sampleNamespace, Name: tn.name}, &ti); err != nil {
		return
	}
	r.mu.Lock()
	tn.status = ti.Status
	r.mu.Unlock()
}

func (r *tokenRun) markRevoked(tn *apiTenant, kid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tn.revoked[kid] = time.Now()
}

// rotations is how many key switches tn's tokens showed.
func (r *tokenRun) rotations(tn *apiTenant) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(len(tn.kids)-1, 0)
}

func (r *tokenRun) firstSigned(tn *apiTenant, kid string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return tn.firstBy[kid]
}

func (r *tokenRun) statusOf(tn *apiTenant) identityv1alpha1.TenantIdentityStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *tn.status.DeepCopy()
}

// checkNoSigningSecret: with signingSecret.enabled false there is no
// <name>-signing-key.
func checkNoSigningSecret(t *testing.T, name string) {
	t.Helper()
	err := poll(10*time.Second, 100*time.Millisecond, "no Secret "+identityv1alpha1.SigningSecretName(name), func() (bool, error) {
		var sec corev1.Secret
		err := s.client.Get(context.Background(), client.ObjectKey{Namespace: sampleNamespace, Name: identityv1alpha1.SigningSecretName(name)}, &sec)
		return apierrors.IsNotFound(err), err
	})
	if err != nil {
		t.Error(err)
	}
}

// checkKeysOnlyInKeySecrets: every private key of name is held by one of
// signet's key Secrets of name, and appears in no other Secret, ConfigMap
// or TenantIdentity of the namespace.
func checkKeysOnlyInKeySecrets(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var secrets corev1.SecretList
	if err := s.client.List(ctx, &secrets, client.InNamespace(sampleNamespace)); err != nil {
		t.Fatal(err)
	}
	mine := &forbiddenSet{byKID: map[string]map[string]string{}}
	keySecrets := map[string]bool{}
	for _, sec := range secrets.Items {
		ref := metav1.GetControllerOf(&sec)
		if sec.Labels[identityv1alpha1.LabelTenantIdentity] == name && sec.Labels[identityv1alpha1.LabelComponent] == identityv1alpha1.ComponentKey &&
			ref != nil && ref.Kind == "TenantIdentity" && ref.Name == name {
			kid := sec.Annotations[identityv1alpha1.AnnotationKID]
			mine.addKey(kid, sec.Data["key.pem"], nil)
			forbidden.addKey(kid, sec.Data["key.pem"], nil)
			keySecrets[sec.Name] = true
		}
	}
	if mine.count() == 0 {
		t.Fatalf("no key Secret of %s found: the check would be empty", name)
	}
	var where []string
	for _, sec := range secrets.Items {
		if keySecrets[sec.Name] {
			continue
		}
		for k, v := range sec.Data {
			// Other Secrets hold other private keys: only these keys' encodings count.
			text := string(v) + " " + base64.StdEncoding.EncodeToString(v)
			where = append(where, keysIn(mine, "Secret "+sec.Name+" "+k, text)...)
		}
	}
	var cms corev1.ConfigMapList
	var tis identityv1alpha1.TenantIdentityList
	for _, l := range []client.ObjectList{&cms, &tis} {
		if err := s.client.List(ctx, l, client.InNamespace(sampleNamespace)); err != nil {
			t.Fatal(err)
		}
	}
	for what, obj := range map[string]any{"ConfigMaps": cms, "TenantIdentities": tis} {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		where = append(where, keysIn(mine, what, string(b))...)
	}
	for _, w := range where {
		t.Errorf("a private key of %s outside its key Secrets: %s", name, w)
	}
	t.Logf("%d private keys of %s, each only in its key Secret (%d other Secrets, %d ConfigMaps checked)",
		mine.count(), name, len(secrets.Items)-len(keySecrets), len(cms.Items))
}

// keysIn lists the keys of set whose encodings text contains.
func keysIn(set *forbiddenSet, where, text string) []string {
	set.mu.Lock()
	defer set.mu.Unlock()
	var out []string
	for kid, encs := range set.byKID {
		for enc, v := range encs {
			if strings.Contains(text, v) {
				out = append(out, fmt.Sprintf("%s: the %s of key %s", where, enc, kid))
			}
		}
	}
	return out
}

// checkTokensNotLogged: the TLS manager's logs hold neither the bearer
// tokens presented nor the tokens it minted.
func checkTokensNotLogged(t *testing.T, tokens []string) {
	t.Helper()
	for _, path := range s.tlsMgr.logs() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, tok := range tokens {
			if bytes.Contains(b, []byte(tok)) {
				t.Errorf("%s logs a token (%.20s...)", path, tok)
			}
		}
		if !bytes.Contains(b, []byte(`"token issued"`)) && path == s.tlsMgr.logs()[len(s.tlsMgr.logs())-1] {
			t.Errorf("%s has no \"token issued\" line: the scan saw no token API logs", path)
		}
	}
}
