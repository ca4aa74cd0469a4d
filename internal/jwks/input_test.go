package jwks

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
)

func TestMaxAgeSeconds(t *testing.T) {
	tests := []struct {
		prePublish string
		max        time.Duration
		want       int64
	}{
		{"1h", 5 * time.Minute, 300},           // the server's limit binds
		{"90s", 5 * time.Minute, 45},           // half of prePublish binds
		{"3s", 5 * time.Minute, 1},             // whole seconds, rounded down
		{"1500ms", 5 * time.Minute, 0},         // ... to 0
		{"1h", 0, 0},                           // no caching asked
		{"", 5 * time.Minute, 300},             // empty: the CRD default, 1h
		{"", 2 * time.Hour, 1800},              // ... half of which binds
		{"not-a-duration", 5 * time.Minute, 0}, // unparsable: cache nothing
		{"-5m", 5 * time.Minute, 0},            // never negative
	}
	for _, tt := range tests {
		if got := maxAgeSeconds(tt.prePublish, tt.max); got != tt.want {
			t.Errorf("maxAgeSeconds(%q, %v) = %d, want %d", tt.prePublish, tt.max, got, tt.want)
		}
	}
}

func TestParseSequence(t *testing.T) {
	for in, want := range map[string]uint64{"": 0, "0": 0, "7": 7, "18446744073709551615": 1<<64 - 1, "-1": 0, "x": 0, "1.5": 0, "18446744073709551616": 0} {
		if got := parseSequence(in); got != want {
			t.Errorf("parseSequence(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestOrderedKeys(t *testing.T) {
	data := map[string]string{"a.json": "A", "b.json": "B", "c.json": "C", "d.json": "D", "z.txt": "Z"}
	tests := []struct {
		name  string
		order string
		want  []string
	}{
		{"as annotated", "c,a,b,d", []string{"c.json", "a.json", "b.json", "d.json", "z.txt"}},
		{"missing from the order: last, sorted", "b", []string{"b.json", "a.json", "c.json", "d.json", "z.txt"}},
		{"unknown kids ignored", "x,c,y", []string{"c.json", "a.json", "b.json", "d.json", "z.txt"}},
		{"repeated kids once", "c,c,a", []string{"c.json", "a.json", "b.json", "d.json", "z.txt"}},
		{"spaces tolerated", " d , a", []string{"d.json", "a.json", "b.json", "c.json", "z.txt"}},
		{"no annotation", "", []string{"a.json", "b.json", "c.json", "d.json", "z.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := orderedKeys(data, tt.order)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i, k := range got {
				if k.Name != tt.want[i] || string(k.JSON) != data[k.Name] {
					t.Errorf("key %d = %q, want %q", i, k.Name, tt.want[i])
				}
			}
		})
	}
}

func TestDocumentInput(t *testing.T) {
	ti := newTI("ns", "x", "acme", siteA, epoch, metav1.ConditionTrue)
	ti.Spec.Keys.PrePublish = "2m"
	k1, k2 := genKey(t, "ES256", 0), genKey(t, "ES256", 1)
	cm := jwksConfigMap(ti, "42", k2, k1)
	in := documentInput(ti, cm, docConfig{baseURL: "https://b.example", maxCacheAge: 5 * time.Minute})
	if in.Org != "acme" || in.SiteID != siteA || in.MaxAge != 60 || in.Sequence != 42 ||
		in.BaseURL != "https://b.example" || in.Issuer != "https://b.example"+v1alpha1.BasePath("acme", siteA) {
		t.Errorf("documentInput = %+v", in)
	}
	if len(in.Keys) != 2 || in.Keys[0].Name != k2.KID+".json" || in.Keys[1].Name != k1.KID+".json" {
		t.Errorf("keys not in annotated order")
	}
}
