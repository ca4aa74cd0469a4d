package controllers

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// privateNeedles are strings that only private key material contains.
type privateNeedles struct {
	needles map[string]string // needle -> what it is
}

// pemMarkerB64 is "-----BEGIN PRIVATE KEY-----" as base64, as it appears
// when a PEM is serialized as a []byte (a Secret's data, say).
var pemMarkerB64 = base64.StdEncoding.EncodeToString([]byte("-----BEGIN PRIVATE KEY-----"))[:32]

// jwkPrivateMember matches a JWK "d" member, escaped or not.
var jwkPrivateMember = regexp.MustCompile(`\\?"d\\?"\s*:`)

func newPrivateNeedles() *privateNeedles {
	return &privateNeedles{needles: map[string]string{
		"PRIVATE KEY": "the PEM marker",
		pemMarkerB64:  "the PEM marker in base64",
	}}
}

// addPEM adds the needles of one PKCS#8 PEM: its DER in base64 (whole, and
// the PEM's lines), and the private scalar as a JWK "d" would carry it.
func (n *privateNeedles) addPEM(t testing.TB, from string, pemBytes []byte) {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("%s: no PEM", from)
	}
	n.needles[base64.StdEncoding.EncodeToString(block.Bytes)] = from + ": DER in base64"
	n.needles[base64.RawURLEncoding.EncodeToString(block.Bytes)] = from + ": DER in base64url"
	for _, line := range strings.Split(string(pemBytes), "\n") {
		if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
			n.needles[line] = from + ": a PEM line"
		}
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", from, err)
	}
	if ec, ok := key.(*ecdsa.PrivateKey); ok {
		d, err := ec.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		n.needles[base64.RawURLEncoding.EncodeToString(d)] = from + ": the private scalar d"
		n.needles[base64.StdEncoding.EncodeToString(d)] = from + ": the private scalar d in base64"
	}
}

// addSnapshot takes the needles of every key a snapshot stores.
func (n *privateNeedles) addSnapshot(t testing.TB, s *snapshot) {
	t.Helper()
	for kid, k := range s.keys {
		n.addPEM(t, "key "+kid, k.secret.Data[dataKeyPEM])
	}
	if s.signing != nil && len(s.signing.Data[dataKeyPEM]) > 0 {
		if block, _ := pem.Decode(s.signing.Data[dataKeyPEM]); block != nil {
			n.addPEM(t, "signing Secret", s.signing.Data[dataKeyPEM])
		}
		var jwk map[string]any
		if json.Unmarshal(s.signing.Data[dataKeyJWK], &jwk) == nil {
			if d, ok := jwk["d"].(string); ok && d != "" {
				n.needles[d] = "signing Secret: key.jwk d"
			}
		}
	}
}

// find reports where text holds private material.
func (n *privateNeedles) find(text string) []string {
	var out []string
	for needle, what := range n.needles {
		if strings.Contains(text, needle) {
			out = append(out, what)
		}
	}
	if jwkPrivateMember.MatchString(text) {
		out = append(out, `a JWK "d" member`)
	}
	return out
}

// TestNoPrivateMaterialLeaves runs a full lifecycle (rotations, a trigger,
// a revocation, drift, a lost key, failing writes) and then looks for
// private key material everywhere it must not be: ConfigMaps, every status
// the TenantIdentity had, every Event note, and the logs.
func TestNoPrivateMaterialLeaves(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	needles := newPrivateNeedles()
	var statuses []string
	kids := map[string]bool{}
	h.seen = func(s *snapshot) {
		needles.addSnapshot(t, s)
		for kid := range s.keys {
			kids[kid] = true
		}
		st, err := json.Marshal(s.ti.Status)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, string(st))
	}
	h.create(nil)

	// Rotations.
	h.at(0)
	h.drive(25 * time.Minute)
	// A trigger, then a revocation of the Active key.
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "leak-check" })
	h.reconcile()
	active := h.snap().ti.Status.ActiveKeyID
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RevokedKeyIDs = []string{active} })
	h.reconcile()

	// Drift: the ConfigMap edited, the signing Secret deleted, the Active
	// key's Secret deleted.
	h.at(26 * time.Minute)
	s := h.snap()
	h.edit(func() error {
		cm := s.cm.DeepCopy()
		cm.Data["foreign.json"] = `{"kty":"oct","k":"c2VjcmV0"}`
		return h.c.Update(h.ctx, cm)
	})
	h.reconcile()
	h.edit(func() error { return h.c.Delete(h.ctx, s.signing) })
	h.reconcile()
	h.deleteKeySecret(h.snap().ti.Status.ActiveKeyID)
	h.reconcile()

	// Failing writes: an injected one, and a real refusal by the API
	// server (a signing Secret made immutable by hand), which the
	// reconciler logs.
	h.at(27 * time.Minute)
	f := &faults{mode: failOne, n: 1}
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "leak-check-2" })
	if _, err := h.reconciler(f.client(h.c)).Reconcile(h.ctx, reqFor(h.ns, h.name)); err == nil || !f.hit() {
		t.Fatalf("injected failure: %v", err)
	}
	h.reconcile() // publishes the triggered key
	h.edit(func() error {
		sec := h.snap().signing.DeepCopy()
		immutable := true
		sec.Immutable = &immutable
		return h.c.Update(h.ctx, sec)
	})
	h.at(29 * time.Minute) // the triggered key activates: the signing Secret must change
	_, err := h.r.Reconcile(h.ctx, reqFor(h.ns, h.name))
	if err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("reconcile with an immutable signing Secret: %v", err)
	}
	h.inv.observe(h.clk.Now(), h.snap(), afterFault)
	h.at(30 * time.Minute)
	if _, err := h.r.Reconcile(h.ctx, reqFor(h.ns, h.name)); err == nil {
		t.Fatal("reconcile with an immutable signing Secret succeeded")
	}
	h.inv.observe(h.clk.Now(), h.snap(), afterFault)
	// Someone removes the immutable Secret; the next reconcile recreates it.
	h.edit(func() error { return h.c.Delete(h.ctx, h.snap().signing) })
	h.drive(50 * time.Minute)
	if len(kids) < 8 {
		t.Fatalf("only %d keys went through the lifecycle", len(kids))
	}

	// The needles find what they look for.
	for _, k := range h.snap().keys {
		if len(needles.find(string(k.secret.Data[dataKeyPEM]))) < 3 {
			t.Fatalf("the needles do not find a key Secret's own PEM")
		}
	}
	if hits := needles.find(string(h.snap().signing.Data[dataKeyJWK])); len(hits) < 2 {
		t.Fatalf("the needles do not find the signing Secret's JWK: %q", hits)
	}

	// Now look where private material must never be.
	var cms corev1.ConfigMapList
	if err := h.c.List(h.ctx, &cms, client.InNamespace(h.ns)); err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) == 0 {
		t.Fatal("no ConfigMap")
	}
	for _, cm := range cms.Items {
		raw, err := json.Marshal(cm)
		if err != nil {
			t.Fatal(err)
		}
		if hits := needles.find(string(raw)); len(hits) > 0 {
			t.Errorf("ConfigMap %s holds %q", cm.Name, hits)
		}
	}
	for i, st := range statuses {
		if hits := needles.find(st); len(hits) > 0 {
			t.Errorf("status %d holds %q: %s", i, hits, st)
		}
	}
	events := h.events.all()
	if len(events) < 15 {
		t.Fatalf("only %d events", len(events))
	}
	for _, e := range events {
		if hits := needles.find(e.Note + " " + e.Reason); len(hits) > 0 {
			t.Errorf("event %s holds %q", e, hits)
		}
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "reconcile failed") || !strings.Contains(logs, "immutable") {
		t.Fatalf("the failures were not logged; logs:\n%s", logs)
	}
	if hits := needles.find(logs); len(hits) > 0 {
		t.Errorf("logs hold %q:\n%s", hits, logs)
	}
	t.Logf("%d needles, %d statuses, %d events, %d bytes of logs scanned", len(needles.needles), len(statuses), len(events), len(logs))
}
