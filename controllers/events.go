package controllers

// Reasons of the Events a reconcile emits about what it found, beside the
// key lifecycle's (internal/rotation) and the conditions' (api/v1alpha1).
const (
	// ReasonKeySecretUnreadable: a key Secret's record or key cannot be
	// read; its kid is treated as lost.
	ReasonKeySecretUnreadable = "KeySecretUnreadable"
	// ReasonUnknownKeyDropped: the JWKS ConfigMap lists a kid signet never
	// published; it is removed.
	ReasonUnknownKeyDropped = "UnknownKeyDropped"
	// ReasonStrayKeyAdopted: a key Secret of the TenantIdentity had lost
	// its labels; they were given back.
	ReasonStrayKeyAdopted = "StrayKeyAdopted"
	// ReasonStrayKeyDestroyed: a key Secret of the TenantIdentity had lost
	// its labels and cannot be read; it was destroyed, so that no private
	// key stays in the namespace untracked.
	ReasonStrayKeyDestroyed = "StrayKeyDestroyed"
)
