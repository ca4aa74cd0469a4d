package charts

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The chart's RBAC must be config/rbac's, object for object, named after
// the release: these tests compare `helm template` with `kubectl
// kustomize config/rbac`, so a rule added on either side alone fails.

var rbacKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// rbacObjects are the RBAC objects of objs by Kind/name, with the name's
// prefix replaced by "signet-", the prefix of config/rbac.
func rbacObjects(objs []*unstructured.Unstructured, prefix string) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if slices.Contains(rbacKinds, o.GetKind()) {
			out[o.GetKind()+"/"+rename(o.GetName(), prefix)] = o
		}
	}
	return out
}

func rename(name, prefix string) string {
	if rest, ok := strings.CutPrefix(name, prefix); ok {
		return "signet-" + rest
	}
	return name
}

// canonical is the JSON of v, for comparing rule lists and subjects.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRBACMatchesKustomize(t *testing.T) {
	t.Parallel()
	kustomized := rbacObjects(decode(t, run(t, nil, kubectl(t), "kustomize", "config/rbac")), "signet-")
	if len(kustomized) == 0 {
		t.Fatal("kubectl kustomize config/rbac rendered no RBAC")
	}
	for _, c := range []struct{ release, namespace, prefix string }{
		{"signet", "signet-system", "signet-"},          // the names of config/default
		{"shard-a", "signet-shards", "shard-a-signet-"}, // a second release: same rules, its own names
	} {
		t.Run(c.release, func(t *testing.T) {
			t.Parallel()
			charted := rbacObjects(render(t, scenario{release: c.release, namespace: c.namespace}), c.prefix)
			for _, key := range slices.Sorted(maps.Keys(kustomized)) {
				if charted[key] == nil {
					t.Errorf("config/rbac has %s; the chart renders none (add it to charts/signet/templates/rbac.yaml)", key)
				}
			}
			for _, key := range slices.Sorted(maps.Keys(charted)) {
				want, got := kustomized[key], charted[key]
				if want == nil {
					t.Errorf("the chart renders %s, config/rbac has none", key)
					continue
				}
				compareRBAC(t, key, want, got, c.namespace, c.prefix)
			}
		})
	}
}

// compareRBAC compares what grants access: rules, roleRefs and subjects
// (names mapped to the release's, namespaces to its namespace).
func compareRBAC(t *testing.T, key string, want, got *unstructured.Unstructured, namespace, prefix string) {
	t.Helper()
	if want.GetNamespace() != "" && got.GetNamespace() != namespace {
		t.Errorf("%s: namespace %q, want the release's %q", key, got.GetNamespace(), namespace)
	}
	if want.GetNamespace() == "" && got.GetNamespace() != "" {
		t.Errorf("%s: cluster-scoped in config/rbac, namespaced (%q) in the chart", key, got.GetNamespace())
	}
	if w, g := canonical(t, want.Object["rules"]), canonical(t, got.Object["rules"]); w != g {
		t.Errorf("%s: rules differ\nconfig/rbac: %s\nchart:       %s", key, w, g)
	}
	if ref, ok := got.Object["roleRef"].(map[string]any); ok {
		ref = maps.Clone(ref)
		ref["name"] = rename(ref["name"].(string), prefix)
		if w, g := canonical(t, want.Object["roleRef"]), canonical(t, ref); w != g {
			t.Errorf("%s: roleRef %s, want %s", key, g, w)
		}
	}
	var subjects []any
	for _, s := range asSlice(got.Object["subjects"]) {
		s := maps.Clone(s.(map[string]any))
		s["name"] = rename(s["name"].(string), prefix)
		if s["namespace"] == namespace {
			s["namespace"] = "signet-system"
		}
		subjects = append(subjects, s)
	}
	if w, g := canonical(t, asSlice(want.Object["subjects"])), canonical(t, subjects); w != g {
		t.Errorf("%s: subjects %s, want %s", key, g, w)
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
