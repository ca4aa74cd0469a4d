package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

// tenant is one TenantIdentity as its tenant sees it.
type tenant struct {
	ns   string
	c    client.Client // the tenant's own client (edit rights in ns only)
	name string
	org  string
	site string
}

func newTenant(t *testing.T, org string, bound bool) *tenant {
	t.Helper()
	nsOrg := org
	if !bound {
		nsOrg = ""
	}
	ns, c := tenantNamespace(t, nsOrg)
	return &tenant{ns: ns, c: c, name: "dc1", org: org, site: uuid.NewString()}
}

func (tn *tenant) key() client.ObjectKey { return client.ObjectKey{Namespace: tn.ns, Name: tn.name} }

// create makes the TenantIdentity, as the tenant, with spec edited by mut.
func (tn *tenant) create(t *testing.T, mut func(*identityv1alpha1.TenantIdentitySpec)) *identityv1alpha1.TenantIdentity {
	t.Helper()
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: tn.name},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: tn.org, SiteID: tn.site},
	}
	if mut != nil {
		mut(&ti.Spec)
	}
	if err := tn.c.Create(context.Background(), ti); err != nil {
		t.Fatalf("create TenantIdentity as the tenant: %v", err)
	}
	return ti
}

func (tn *tenant) get(t *testing.T) *identityv1alpha1.TenantIdentity {
	t.Helper()
	var ti identityv1alpha1.TenantIdentity
	if err := tn.c.Get(context.Background(), tn.key(), &ti); err != nil {
		t.Fatal(err)
	}
	return &ti
}

// edit changes the spec as the tenant, retrying on conflicts.
func (tn *tenant) edit(t *testing.T, mut func(*identityv1alpha1.TenantIdentity)) {
	t.Helper()
	eventually(t, "edit "+tn.name, func() error {
		ti := tn.get(t)
		mut(ti)
		return tn.c.Update(context.Background(), ti)
	})
}

// waitCondition waits until Ready has status and reason, and returns it.
func (tn *tenant) waitCondition(t *testing.T, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var got *metav1.Condition
	eventually(t, fmt.Sprintf("%s %s=%s %s", tn.name, typ, status, reason), func() error {
		got = meta.FindStatusCondition(tn.get(t).Status.Conditions, typ)
		if got == nil || got.Status != status || got.Reason != reason {
			return fmt.Errorf("condition %+v", got)
		}
		return nil
	})
	return got
}

// ready waits until the TenantIdentity is Ready and served, and returns
// what is served.
func (tn *tenant) ready(t *testing.T) string {
	t.Helper()
	tn.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	active := tn.get(t).Status.ActiveKeyID
	var got string
	eventually(t, tn.name+" served", func() error {
		var err error
		got, err = served(tn.org, tn.site)
		if err == nil && !strings.HasPrefix(got, active) {
			err = fmt.Errorf("served %q, Active %s", got, active)
		}
		return err
	})
	return got
}

// hasEvent finds an Event about the tenant's TenantIdentity.
func (tn *tenant) hasEvent(t *testing.T, typ, reason, inNote string) error {
	t.Helper()
	var list corev1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(tn.ns)); err != nil {
		return err
	}
	for _, e := range list.Items {
		if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, inNote) {
			return nil
		}
	}
	return fmt.Errorf("no %s %s Event saying %q", typ, reason, inNote)
}

// keyKIDs lists the kids of the tenant's key Secrets.
func (tn *tenant) keyKIDs(t *testing.T) []string {
	t.Helper()
	var list corev1.SecretList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(tn.ns), client.MatchingLabels{
		identityv1alpha1.LabelComponent: identityv1alpha1.ComponentKey,
	}); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, s := range list.Items {
		kids = append(kids, s.Annotations[identityv1alpha1.AnnotationKID])
	}
	return kids
}

// keySecrets counts the key Secrets of the tenant's TenantIdentity.
func (tn *tenant) keySecrets(t *testing.T) int {
	t.Helper()
	var list corev1.SecretList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(tn.ns), client.MatchingLabels{
		identityv1alpha1.LabelComponent: identityv1alpha1.ComponentKey,
	}); err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// counter reads a counter of the process's registry (the managers').
func counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestHostileTenants: each case is an attack a tenant can mount with edit
// rights in its own namespace, and what must hold despite it.
func TestHostileTenants(t *testing.T) {
	cases := []struct {
		name, holds string
		attack      func(t *testing.T)
	}{
		{
			name:  "forged publication: unbound namespace, status patched Published=True in a loop, a ConfigMap for a free org/site",
			holds: "no server serves the attacker's key; the TenantIdentity is OrgNotBound",
			attack: func(t *testing.T) {
				attacker := newTenant(t, "victim"+uuid.NewString()[:8], false)
				ti := attacker.create(t, nil)
				attacker.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
				forged, err := keys.Generate(keys.ES256, 0, nil)
				if err != nil {
					t.Fatal(err)
				}
				jwk, _ := forged.PublicJWK()
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{
						Namespace: attacker.ns, Name: identityv1alpha1.JWKSConfigMapName(ti.Name),
						Labels: map[string]string{
							identityv1alpha1.LabelComponent: identityv1alpha1.ComponentJWKS,
							identityv1alpha1.LabelOrg:       attacker.org, identityv1alpha1.LabelSite: attacker.site,
						},
						Annotations: map[string]string{identityv1alpha1.AnnotationKeyOrder: forged.KID},
						OwnerReferences: []metav1.OwnerReference{{APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "TenantIdentity",
							Name: ti.Name, UID: attacker.get(t).UID, Controller: ptr.To(true)}},
					},
					Data: map[string]string{forged.KID + ".json": string(jwk)},
				}
				if err := attacker.c.Create(context.Background(), cm); err != nil {
					t.Fatal(err)
				}
				// The patch loop races the controller, which writes
				// Published=False back; meanwhile the servers are asked.
				end := time.Now().Add(3 * time.Second)
				for time.Now().Before(end) {
					cur := attacker.get(t)
					meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: identityv1alpha1.ConditionPublished,
						Status: metav1.ConditionTrue, Reason: identityv1alpha1.ReasonKeysPublished, Message: "forged"})
					_ = attacker.c.Status().Update(context.Background(), cur)
					if got, _ := served(attacker.org, attacker.site); got != "404" {
						t.Fatalf("the forged publication is served: %q", got)
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
		},
		{
			name:  "displacement: an older claim from an unbound namespace, then its namespace bound",
			holds: "the published owner keeps the org/site and every key; the later-bound claim is Conflict",
			attack: func(t *testing.T) {
				org := "acme" + uuid.NewString()[:8]
				squatter := newTenant(t, org, false)
				squatter.create(t, nil)
				squatter.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
				time.Sleep(1100 * time.Millisecond) // creationTimestamp has a second's precision: the squatter is older
				owner := newTenant(t, org, true)
				owner.site = squatter.site
				owner.create(t, nil)
				before := owner.ready(t)
				var ns corev1.Namespace
				if err := env.Client.Get(context.Background(), client.ObjectKey{Name: squatter.ns}, &ns); err != nil {
					t.Fatal(err)
				}
				ns.Labels = map[string]string{identityv1alpha1.LabelOrg: org} // the admin binds it
				if err := env.Client.Update(context.Background(), &ns); err != nil {
					t.Fatal(err)
				}
				squatter.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonConflict)
				if got, err := served(org, owner.site); err != nil || got != before {
					t.Fatalf("after the squatter was bound: served %q (%v), want %q as before", got, err, before)
				}
				if n := squatter.keySecrets(t); n != 0 {
					t.Errorf("the squatter got %d keys", n)
				}
			},
		},
		{
			name:  "key flood refused at admission: a second-scale period and a month of overlap",
			holds: "the CRD refuses it, saying why",
			attack: func(t *testing.T) {
				attacker := newTenant(t, "flood"+uuid.NewString()[:8], true)
				ti := &identityv1alpha1.TenantIdentity{
					ObjectMeta: metav1.ObjectMeta{Namespace: attacker.ns, Name: "flood"},
					Spec: identityv1alpha1.TenantIdentitySpec{Org: attacker.org, SiteID: attacker.site,
						Keys: identityv1alpha1.KeyPolicy{RotationPeriod: "2s", PrePublish: "1s", Overlap: "720h", TokenTTL: "1s"}},
				}
				err := attacker.c.Create(context.Background(), ti)
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "at most 10 keys are held at once") {
					t.Fatalf("got %v, want the key bound's refusal", err)
				}
			},
		},
		{
			name:  "key flood within the bound: a 300 ms period with the longest overlap allowed, for several seconds",
			holds: "never more than 10 keys at once; keys made no faster than the per-tenant budget allows",
			attack: func(t *testing.T) {
				attacker := newTenant(t, "flood"+uuid.NewString()[:8], true)
				attacker.create(t, func(s *identityv1alpha1.TenantIdentitySpec) {
					s.Keys = identityv1alpha1.KeyPolicy{RotationPeriod: "300ms", PrePublish: "150ms", Overlap: "2400ms", TokenTTL: "100ms"}
				})
				// Every key lives at least its 2.4 s retention, far longer
				// than a poll: each one made is seen.
				seen := map[string]bool{}
				start := time.Now()
				for time.Since(start) < 6*time.Second {
					kids := attacker.keyKIDs(t)
					if len(kids) > 10 {
						t.Fatalf("%d keys at once", len(kids))
					}
					for _, kid := range kids {
						seen[kid] = true
					}
					time.Sleep(100 * time.Millisecond)
				}
				// The budget: 20 EC keys at once, then one per 2 s.
				if limit := 20 + time.Since(start).Seconds()/2 + 1; float64(len(seen)) > limit {
					t.Errorf("%d keys made in %s, more than the budget's %.0f", len(seen), time.Since(start), limit)
				}
				t.Logf("%d keys made in %s, at most %d at once", len(seen), time.Since(start).Round(time.Second), 10)
			},
		},
		{
			name:  "blind failure: a ResourceQuota forbids more Secrets, then a rotationTrigger",
			holds: "Ready=False ApplyFailed naming the Secret and the quota, a Warning Event, the error counted; what is served stays",
			attack: func(t *testing.T) {
				tn := newTenant(t, "quota"+uuid.NewString()[:8], true)
				tn.create(t, nil)
				before := tn.ready(t)
				var secrets corev1.SecretList
				if err := env.Client.List(context.Background(), &secrets, client.InNamespace(tn.ns)); err != nil {
					t.Fatal(err)
				}
				quota := &corev1.ResourceQuota{
					ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "no-more-secrets"},
					Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceSecrets: *resource.NewQuantity(int64(len(secrets.Items)), resource.DecimalSI)}},
				}
				if err := env.Client.Create(context.Background(), quota); err != nil {
					t.Fatal(err)
				}
				// envtest runs no kube-controller-manager: the test counts the
				// usage as its quota controller would; the API server's quota
				// admission then enforces it.
				quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: quota.Spec.Hard}
				if err := env.Client.Status().Update(context.Background(), quota); err != nil {
					t.Fatal(err)
				}
				failures := counter(t, "signet_reconcile_errors_total", "reason", identityv1alpha1.ReasonApplyFailed)
				tn.edit(t, func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "now" })
				c := tn.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonApplyFailed)
				if !strings.Contains(c.Message, "create key Secret") || !strings.Contains(c.Message, "exceeded quota") {
					t.Errorf("ApplyFailed message does not name the write and the quota: %q", c.Message)
				}
				eventually(t, "the ApplyFailed Event", func() error {
					return tn.hasEvent(t, corev1.EventTypeWarning, identityv1alpha1.ReasonApplyFailed, "exceeded quota")
				})
				if got := counter(t, "signet_reconcile_errors_total", "reason", identityv1alpha1.ReasonApplyFailed); got <= failures {
					t.Errorf("signet_reconcile_errors_total{reason=ApplyFailed} did not grow: %v", got)
				}
				if got, _ := served(tn.org, tn.site); got != before {
					t.Errorf("served %q, before the failure %q", got, before)
				}
				// The admin lifts the quota: the rotation goes on.
				if err := env.Client.Delete(context.Background(), quota); err != nil {
					t.Fatal(err)
				}
				tn.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
			},
		},
		{
			name:  "blind failure: the tenant makes its JWKS ConfigMap immutable, then a rotationTrigger",
			holds: "Ready=False ApplyFailed saying so; what is served stays; deleting the ConfigMap repairs it",
			attack: func(t *testing.T) {
				tn := newTenant(t, "immut"+uuid.NewString()[:8], true)
				tn.create(t, nil)
				before := tn.ready(t)
				var cm corev1.ConfigMap
				key := client.ObjectKey{Namespace: tn.ns, Name: identityv1alpha1.JWKSConfigMapName(tn.name)}
				if err := tn.c.Get(context.Background(), key, &cm); err != nil {
					t.Fatal(err)
				}
				cm.Immutable = ptr.To(true)
				if err := tn.c.Update(context.Background(), &cm); err != nil {
					t.Fatal(err)
				}
				tn.edit(t, func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "now" })
				c := tn.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonApplyFailed)
				if !strings.Contains(c.Message, "immutable") {
					t.Errorf("ApplyFailed message: %q", c.Message)
				}
				if got, _ := served(tn.org, tn.site); got != before {
					t.Errorf("served %q, before %q", got, before)
				}
				if err := tn.c.Delete(context.Background(), &cm); err != nil {
					t.Fatal(err)
				}
				tn.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
			},
		},
		{
			name:  "issuer squatting: spec.issuer set to another tenant's path under the public URL",
			holds: "InvalidSpec saying why; the documents keep the tenant's own issuer",
			attack: func(t *testing.T) {
				tn := newTenant(t, "squat"+uuid.NewString()[:8], true)
				tn.create(t, nil)
				tn.ready(t)
				victim := publicBaseURL + identityv1alpha1.BasePath("victim", uuid.NewString())
				tn.edit(t, func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Issuer = victim })
				c := tn.waitCondition(t, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonInvalidSpec)
				if !strings.Contains(c.Message, "pose as another tenant") {
					t.Errorf("InvalidSpec message: %q", c.Message)
				}
				own := `"issuer":"` + identityv1alpha1.DefaultIssuer(publicBaseURL, tn.org, tn.site) + `"`
				for _, srv := range servers {
					if d := fetch(srv, tn.org, tn.site, "/.well-known/openid-configuration"); !strings.Contains(d, own) {
						t.Errorf("discovery: %s", d)
					}
				}
			},
		},
		{
			name:  "status bloat: the tenant writes a 30 KiB condition message into its status",
			holds: "the controller puts its own status back",
			attack: func(t *testing.T) {
				tn := newTenant(t, "bloat"+uuid.NewString()[:8], true)
				tn.create(t, nil)
				tn.ready(t)
				eventually(t, "bloat the status", func() error {
					ti := tn.get(t)
					meta.SetStatusCondition(&ti.Status.Conditions, metav1.Condition{Type: identityv1alpha1.ConditionReady,
						Status: metav1.ConditionTrue, Reason: identityv1alpha1.ReasonKeysPublished, Message: strings.Repeat("m", 30<<10)})
					return tn.c.Status().Update(context.Background(), ti)
				})
				eventually(t, "the status repaired", func() error {
					if c := meta.FindStatusCondition(tn.get(t).Status.Conditions, identityv1alpha1.ConditionReady); c == nil || len(c.Message) > 2048 {
						return fmt.Errorf("still bloated")
					}
					return nil
				})
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Logf("must hold: %s", tc.holds)
			tc.attack(t)
		})
	}
}
