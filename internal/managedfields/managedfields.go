// Package managedfields tells, from an object's managedFields, who wrote
// what: the API server records per field the manager that last wrote it.
// signet writes under one manager name; this package answers the two
// questions its reconciles ask of an object without reading its data (a
// Secret's included): did anyone else write what signet publishes or hands
// to workloads, and which data entries did signet's own writes put there.
// And it compacts managedFields for the caches to what the first question
// needs.
//
// A manager's name is chosen by the client, so the answers are about edits
// within a tenant's own objects, never anything across tenants.
package managedfields

import (
	"encoding/json"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Signet is the manager signet's writes are recorded under.
const Signet = "signet"

// foreign is the manager name Compact gives every other writer.
const foreign = "other"

// ForeignWrites reports whether a manager other than signet owns a field
// that carries what signet wrote: data, type, immutability, owner
// references, or signet's own labels and annotations. Labels and
// annotations of other tools are theirs.
func ForeignWrites(meta metav1.ObjectMeta) bool {
	for _, e := range meta.ManagedFields {
		if e.Manager == Signet || e.FieldsV1 == nil {
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			return true // unreadable: assume the worst
		}
		for _, f := range []string{"f:data", "f:binaryData", "f:stringData", "f:type", "f:immutable"} {
			if _, ok := fields[f]; ok {
				return true
			}
		}
		if metadataOwned(fields["f:metadata"]) {
			return true
		}
	}
	return false
}

// metadataOwned: a managedFields entry's f:metadata holds owner
// references or one of signet's labels or annotations.
func metadataOwned(raw json.RawMessage) bool {
	if raw == nil {
		return false
	}
	var meta map[string]map[string]json.RawMessage
	if json.Unmarshal(raw, &meta) != nil {
		return true
	}
	if _, ok := meta["f:ownerReferences"]; ok {
		return true
	}
	for _, set := range []string{"f:labels", "f:annotations"} {
		for name := range meta[set] {
			if n := strings.TrimPrefix(name, "f:"); strings.HasPrefix(n, "identity.signet.dev/") || n == "app.kubernetes.io/managed-by" {
				return true
			}
		}
	}
	return false
}

// SignetDataKeys are the data entries signet's own writes put in the
// object, as the API server recorded them.
func SignetDataKeys(meta metav1.ObjectMeta) map[string]bool {
	out := map[string]bool{}
	for _, e := range meta.ManagedFields {
		if e.Manager != Signet || e.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Data map[string]json.RawMessage `json:"f:data"`
		}
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			continue
		}
		for name := range fields.Data {
			if key, ok := strings.CutPrefix(name, "f:"); ok {
				out[key] = true
			}
		}
	}
	return out
}

// Compact replaces meta's managedFields, for a cache, with the least that
// keeps ForeignWrites' answer: nothing when signet alone wrote what it
// publishes (the common case, which then costs no memory), else one entry
// marking a foreign writer. SignetDataKeys of a compacted object answers
// "none": a reconcile on the cache's view then treats an entry it cannot
// place as unsettled and looks live, where the full record is.
func Compact(meta *metav1.ObjectMeta) {
	if len(meta.ManagedFields) == 0 {
		return
	}
	if !ForeignWrites(*meta) {
		meta.ManagedFields = nil
		return
	}
	meta.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: foreign, FieldsV1: metav1.NewFieldsV1(`{"f:data":{}}`)}}
}
