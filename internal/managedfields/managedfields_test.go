package managedfields

import (
	"maps"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func entry(manager, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
}

const signetWrote = `{"f:data":{".":{},"f:a.json":{},"f:b.json":{}},"f:metadata":{"f:annotations":{".":{},"f:identity.signet.dev/key-order":{}},` +
	`"f:labels":{".":{},"f:identity.signet.dev/component":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"u\"}":{}}}}`

func TestForeignWritesAndDataKeys(t *testing.T) {
	cases := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		foreign bool
		keys    []string
	}{
		{"only signet", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote)}, false, []string{"a.json", "b.json"}},
		{"someone edited an entry", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote), entry("kubectl-edit", `{"f:data":{"f:a.json":{}}}`)}, true, []string{"a.json", "b.json"}},
		{"someone changed signet's label", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote), entry("kubectl-label", `{"f:metadata":{"f:labels":{"f:identity.signet.dev/component":{}}}}`)}, true, []string{"a.json", "b.json"}},
		{"someone added a label of their own", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote), entry("kubectl-label", `{"f:metadata":{"f:labels":{"f:team":{}}}}`)}, false, []string{"a.json", "b.json"}},
		{"someone made it immutable", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote), entry("kubectl-edit", `{"f:immutable":{}}`)}, true, []string{"a.json", "b.json"}},
		{"someone took the owner references", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote), entry("x", `{"f:metadata":{"f:ownerReferences":{}}}`)}, true, []string{"a.json", "b.json"}},
		{"unreadable fields: assume the worst", []metav1.ManagedFieldsEntry{entry(Signet, signetWrote), entry("x", `not json`)}, true, []string{"a.json", "b.json"}},
		{"nothing recorded", nil, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			meta := metav1.ObjectMeta{ManagedFields: tc.entries}
			check := func(what string, meta metav1.ObjectMeta) {
				t.Helper()
				if got := ForeignWrites(meta); got != tc.foreign {
					t.Errorf("%s: ForeignWrites = %v, want %v", what, got, tc.foreign)
				}
				want := map[string]bool{}
				for _, k := range tc.keys {
					want[k] = true
				}
				if got := SignetDataKeys(meta); !maps.Equal(got, want) {
					t.Errorf("%s: SignetDataKeys = %v, want %v", what, got, want)
				}
			}
			check("as stored", meta)
			Compact(&meta)
			// The same answer to ForeignWrites; nothing kept without a
			// foreign writer; no data keys claimed for signet.
			if got := ForeignWrites(meta); got != tc.foreign {
				t.Errorf("compacted: ForeignWrites = %v, want %v", got, tc.foreign)
			}
			if got := len(meta.ManagedFields); got > 1 || (got == 1) != tc.foreign {
				t.Errorf("compacted to %d entries", got)
			}
			if got := SignetDataKeys(meta); len(got) != 0 {
				t.Errorf("compacted: SignetDataKeys = %v, want none", got)
			}
		})
	}
}
