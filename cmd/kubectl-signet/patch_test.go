package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

func get(t *testing.T, ti *identityv1alpha1.TenantIdentity) *identityv1alpha1.TenantIdentity {
	t.Helper()
	got := &identityv1alpha1.TenantIdentity{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(ti), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func keyIn(ti *identityv1alpha1.TenantIdentity, state identityv1alpha1.KeyState) string {
	for _, k := range ti.Status.Keys {
		if k.State == state {
			return k.KID
		}
	}
	return ""
}

// TestRotateAndRevoke drives a rotation and a revocation through the
// plugin and watches the real reconciler carry them out.
func TestRotateAndRevoke(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	ns := ti.Namespace

	r := plugin(t, "rotate", "-n", ns, ti.Name)
	if r.code != 0 || !strings.Contains(r.stdout, "rotation requested") {
		t.Fatalf("rotate: %s", r)
	}
	trigger := get(t, ti).Spec.RotationTrigger
	if trigger == "" || !strings.Contains(r.stdout, trigger) {
		t.Fatalf("rotationTrigger %q after rotate: %s", trigger, r)
	}
	ti = waitFor(t, ti, "a Next key", func(ti *identityv1alpha1.TenantIdentity) bool {
		return keyIn(ti, identityv1alpha1.KeyStateNext) != "" && ti.Status.LastRotationTrigger == trigger
	})
	next, active := keyIn(ti, identityv1alpha1.KeyStateNext), ti.Status.ActiveKeyID
	keys := rows(t, plugin(t, "status", "-n", ns, ti.Name).stdout, "KID STATE PUBLISHED ACTIVATES RETIRES REMOVES")
	if len(keys) != 2 || keys[0][0] != active || keys[0][1] != "Active" || keys[1][0] != next || keys[1][1] != "Next" {
		t.Errorf("keys after rotate %q, want Active %s then Next %s", keys, active, next)
	}
	// A second rotate changes the trigger again, even within a second.
	if r := plugin(t, "rotate", "-n", ns, ti.Name); r.code != 0 || get(t, ti).Spec.RotationTrigger == trigger {
		t.Errorf("second rotate left the trigger at %q: %s", trigger, r)
	}

	// A kid the TenantIdentity does not have is refused, naming its keys
	// and the one a prefix matches.
	r = plugin(t, "revoke", "-n", ns, ti.Name, next[:8])
	if r.code != exitFailed || !strings.Contains(r.stderr, "is not a key of "+ns+"/"+ti.Name) ||
		!strings.Contains(r.stderr, "did you mean "+next+"?") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("revoke of a prefix: %s", r)
	}
	if r := plugin(t, "revoke", "-n", ns, ti.Name, "no/such kid"); r.code != exitFailed || !strings.Contains(r.stderr, "is not a kid") {
		t.Errorf("revoke of a malformed kid: %s", r)
	}
	if got := get(t, ti).Spec.RevokedKeyIDs; len(got) != 0 {
		t.Fatalf("refused revocations wrote %q", got)
	}

	r = plugin(t, "revoke", "-n", ns, ti.Name, next)
	if r.code != 0 || !strings.Contains(r.stdout, "kid "+next+" revoked") {
		t.Fatalf("revoke: %s", r)
	}
	waitFor(t, ti, "the revoked key gone", func(ti *identityv1alpha1.TenantIdentity) bool {
		_, present := findKey(ti, next)
		return !present && ti.Status.ActiveKeyID == active
	})
	var cm corev1.ConfigMap
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: identityv1alpha1.JWKSConfigMapName(ti.Name)}, &cm); err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Data[next+".json"]; ok {
		t.Errorf("the revoked key is still in the ConfigMap")
	}
	if r := plugin(t, "revoke", "-n", ns, ti.Name, next); r.code != 0 || !strings.Contains(r.stdout, "revoked already") {
		t.Errorf("second revoke: %s", r)
	}

	// --force revokes a kid the status does not list (a key restored from
	// elsewhere, say), with a warning.
	r = plugin(t, "revoke", "-n", ns, ti.Name, "forgotten-kid", "--force")
	if r.code != 0 || !strings.Contains(r.stderr, "warning") {
		t.Errorf("revoke --force: %s", r)
	}
	if got := get(t, ti).Spec.RevokedKeyIDs; !slices.Equal(got, []string{next, "forgotten-kid"}) {
		t.Errorf("revokedKeyIDs %q, want the two revocations in order", got)
	}
}

// TestRevokeActiveWarns: revoking the Active key says what it costs.
func TestRevokeActiveWarns(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	r := plugin(t, "revoke", "-n", ti.Namespace, ti.Name, ti.Status.ActiveKeyID)
	if r.code != 0 || !strings.Contains(r.stderr, "this is the Active key") {
		t.Fatalf("revoke of the Active key: %s", r)
	}
	waitFor(t, ti, "a successor Active", func(got *identityv1alpha1.TenantIdentity) bool {
		return got.Status.ActiveKeyID != "" && got.Status.ActiveKeyID != ti.Status.ActiveKeyID
	})
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	ns := ti.Namespace
	if r := plugin(t, "suspend", "-n", ns, ti.Name); r.code != 0 || !strings.Contains(r.stdout, "suspended:") {
		t.Fatalf("suspend: %s", r)
	}
	waitFor(t, ti, "Suspended", func(ti *identityv1alpha1.TenantIdentity) bool {
		c := meta.FindStatusCondition(ti.Status.Conditions, identityv1alpha1.ConditionReady)
		return ti.Spec.Suspend && c != nil && c.Reason == identityv1alpha1.ReasonSuspended
	})
	if r := plugin(t, "suspend", "-n", ns, ti.Name); r.code != 0 || !strings.Contains(r.stdout, "suspended already") {
		t.Errorf("second suspend: %s", r)
	}
	r := plugin(t, "rotate", "-n", ns, ti.Name)
	if r.code != 0 || !strings.Contains(r.stderr, "suspended") {
		t.Errorf("rotate while suspended does not warn: %s", r)
	}
	if r := plugin(t, "resume", "-n", ns, ti.Name); r.code != 0 || !strings.Contains(r.stdout, "resumed") {
		t.Fatalf("resume: %s", r)
	}
	waitFor(t, ti, "resumed and Ready", func(ti *identityv1alpha1.TenantIdentity) bool {
		return !ti.Spec.Suspend && meta.IsStatusConditionTrue(ti.Status.Conditions, identityv1alpha1.ConditionReady) &&
			keyIn(ti, identityv1alpha1.KeyStateNext) != ""
	})
	if r := plugin(t, "resume", "-n", ns, ti.Name); r.code != 0 || !strings.Contains(r.stdout, "not suspended") {
		t.Errorf("second resume: %s", r)
	}
}

// TestUsageErrors: bad command lines fail with status 2 and say why,
// before anything reaches the cluster.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"rotat", "x"}, `unknown command "rotat"`},
		{[]string{"rotate"}, "usage: kubectl signet rotate <name>"},
		{[]string{"revoke", "x"}, "usage: kubectl signet revoke <name> <kid>"},
		{[]string{"status", "--force"}, "status does not take --force"},
		{[]string{"status", "-A", "x"}, "exclude each other"},
		{[]string{"token", "x", "--token-file", "f"}, "--server is required"},
		{[]string{"token", "x", "--server", "https://s"}, "exactly one of --token-file and --service-account"},
		{[]string{"token", "x", "--server", "https://s", "--token-file", "f", "--expiration", "1.5s"}, "whole number of seconds"},
		{[]string{"token", "x", "--server", "https://s", "--token-file", "f", "-o", "yaml"}, `--output "yaml"`},
	} {
		r := plugin(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: %s\nwant exit 2 and %q", c.args, r, c.want)
		}
	}
	if r := plugin(t, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Commands:") {
		t.Errorf("--help: %s", r)
	}
}
