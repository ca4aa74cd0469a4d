package controllers

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fieldManager is the name signet's writes are recorded under in the
// managedFields of what it writes. The API server keeps, per field, which
// manager wrote it last: so signet can tell from an object's metadata
// alone whether anyone else changed what it published or hands to
// workloads, without reading (or caching) a Secret's data. A manager's
// name is chosen by the client, so this tells signet about edits within a
// tenant's own objects, never anything across tenants.
const fieldManager = "signet"

// foreignWrites reports whether a manager other than signet owns a field
// that carries what signet wrote: data, type, immutability, owner
// references, or signet's own labels and annotations. Labels and
// annotations of other tools are theirs.
func foreignWrites(meta metav1.ObjectMeta) bool {
	for _, e := range meta.ManagedFields {
		if e.Manager == fieldManager || e.FieldsV1 == nil {
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			return true // unreadable: assume the worst, the reconcile looks live
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

// signetDataKeys are the data entries of cm that signet's own writes put
// there, as the API server recorded them.
func signetDataKeys(cm *corev1.ConfigMap) map[string]bool {
	out := map[string]bool{}
	if cm == nil {
		return out
	}
	for _, e := range cm.ManagedFields {
		if e.Manager != fieldManager || e.FieldsV1 == nil {
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
