// Package rotation is signet's key-lifecycle policy: a pure function from
// the recorded key timelines, what is observed in the cluster and a clock
// value to the records, documents and signing key that should exist.
//
// A key is Next (published, not signing), then Active (the one signing key),
// then Retired (published, not signing), then removed. States are recorded in
// each key's Secret, not derived from time, so that suspend can freeze them
// and so that a key's retirement is the moment it really stopped signing.
//
// The controller runs one reconcile as:
//
//	plan := Decide(in)
//	if plan.Create != nil {
//		// generate the key and store its Secret with plan.Create.Record
//		// and the new kid, then, on the same in.Now:
//		in, plan = Created(in, plan, kid) // accepts the new key, creates nothing
//	}
//	// then, in this order (each step is safe to interrupt):
//	//  1. write the records of plan.Keys that changed, in plan.Keys order
//	//     (the Active key first, so a crash never leaves no Active record);
//	//  2. write the ConfigMap with plan.Published (public keys only);
//	//  3. point the signing Secret at plan.ActiveKID (unless it is ""),
//	//     then plan, rec = Switched(policy, plan, previousKID, now) and
//	//     write rec when it is not nil: the key stopped signing only now;
//	//  4. delete the Secrets of plan.Delete, now that they are unpublished
//	//     and sign no more (a failed write above destroys nothing);
//	//  5. write the status (HandledTrigger, the keys and the orphans with
//	//     their RemovesAt, NextChange).
//
// An orphan's RemovesAt is kept only in the status: the controller passes
// it back in Input.Orphans. A published kid with neither a Secret nor a
// status entry is not passed as an orphan at all; Decide then leaves it out
// of plan.Published, and the controller reports it as UnknownKeyDropped.
//
// Records must keep their times exactly (RFC 3339 with nanoseconds): a
// PublishedAt or RemovesAt rounded down shortens a pre-publication or an
// overlap.
//
// Events: emit those of the first plan of a reconcile. Events whose KID is
// empty are about plan.Create; the controller may fill in the generated kid.
// The re-plan after storing that key repeats the first plan's decisions (the
// tests check it) but not necessarily its events.
//
// The invariants the tests check on a simulated cluster, crashes included
// (package rotationtest holds the checker, which the controller's tests use
// too; invariant_test.go drives the simulation):
//   - the published documents always contain the signing key;
//   - a key starts signing only after it has been published for PrePublish
//     (except the very first key and the successor of a revoked or lost one);
//   - a key leaves the documents only Overlap after it stopped signing
//     (revocation aside);
//   - a stored key disappears only through Plan.Delete (revoked, or Retired
//     and past RemovesAt); a plan never holds two Active records, and the
//     next reconcile adopts whatever a crash left (two Active records, a key
//     not yet published, a signing Secret not yet switched).
package rotation

import (
	"cmp"
	"slices"
	"time"
)

// State is a key's recorded lifecycle state.
type State string

const (
	Next    State = "Next"    // published, not signing yet
	Active  State = "Active"  // the one signing key
	Retired State = "Retired" // published, no longer signing, removed at RemovesAt
)

// Policy holds the key parameters and durations of the spec, already
// validated: every duration > 0, RotationPeriod > PrePublish,
// Overlap >= TokenTTL.
type Policy struct {
	Algorithm      string
	RSAKeySize     int
	RotationPeriod time.Duration
	PrePublish     time.Duration
	Overlap        time.Duration
	TokenTTL       time.Duration
	// SigningPropagation is how long after the signing Secret switches to
	// a new key a workload that mounts it may still sign with the old one
	// (kubelet refreshes a mounted Secret at its next sync). A replaced
	// key's overlap counts from then. Zero when nothing mounts the Secret.
	SigningPropagation time.Duration
}

// Retention is how long a key stays published after the signing Secret
// stopped holding it: until every mounting workload can have stopped
// signing with it, plus the overlap its last tokens need.
func (p Policy) Retention() time.Duration { return p.SigningPropagation + p.Overlap }

// MaxKeys is the most keys a TenantIdentity holds at once.
const MaxKeys = 10

// KeysHeld is the most keys the policy holds at once in steady state: the
// Active key, one Next key, and the Retired keys still inside their
// retention (one per rotation period it spans).
func (p Policy) KeysHeld() int {
	retired := int((p.Retention() + p.RotationPeriod - 1) / p.RotationPeriod)
	return retired + 2
}

// Key is one stored key's record, the durable truth kept in its Secret.
// A record's times are fixed when they are set: a later change of Policy
// applies to the keys created, activated or retired after it.
type Key struct {
	KID         string
	Algorithm   string
	State       State
	PublishedAt time.Time // when it entered the published documents
	ActivatesAt time.Time // Next: planned activation; Active/Retired: when it became Active
	RotatesAt   time.Time // Active: when its successor is due to take over
	RetiredAt   time.Time // Retired: when it stopped signing
	RemovesAt   time.Time // Retired: when it leaves the documents (RetiredAt + Policy.Retention)
	Trigger     string    // the rotationTrigger value this key was created or hurried for, if any
}

// Input is everything Decide looks at. KIDs are unique across Keys and
// Orphans.
type Input struct {
	Now         time.Time
	Policy      Policy
	Suspend     bool
	Trigger     string   // spec.rotationTrigger
	LastTrigger string   // status.lastRotationTrigger; may be lost, keys' Trigger fields count too
	Revoked     []string // spec.revokedKeyIDs
	Keys        []Key    // every stored key (from Secrets)

	PublishedKIDs []string // kids currently present in the published ConfigMap
	SigningKID    string   // kid the signing Secret currently holds ("" if none)

	// Orphans are kids of the ConfigMap with no stored key any more (their
	// Secret was deleted by hand), State Retired, RemovesAt from the last
	// status when known, zero otherwise.
	Orphans []Key
}

// NewKey is a key the controller must generate: generation is I/O, so the
// policy only says what to generate and the record to store with it.
type NewKey struct {
	Algorithm  string
	RSAKeySize int
	Record     Key // KID empty; State, PublishedAt, ActivatesAt, RotatesAt, Trigger filled
}

// Event types, as Kubernetes spells them.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event reasons.
const (
	ReasonKeyCreated             = "KeyCreated"             // first key, or an at-once successor to generate
	ReasonKeyPublished           = "KeyPublished"           // a Next key to generate
	ReasonKeyActivated           = "KeyActivated"           // a key starts signing
	ReasonKeyRetired             = "KeyRetired"             // a key stops signing
	ReasonKeyRemoved             = "KeyRemoved"             // a key leaves the documents after its overlap
	ReasonKeyRevoked             = "KeyRevoked"             // a revoked key is unpublished and destroyed
	ReasonRevokedActiveKey       = "RevokedActiveKey"       // the signing key was revoked: successor at once
	ReasonActiveKeySecretLost    = "ActiveKeySecretLost"    // no stored Active key: successor at once
	ReasonKeySecretLost          = "KeySecretLost"          // a published kid has no stored key any more
	ReasonAdoptedDuplicateActive = "AdoptedDuplicateActive" // several Active records after a crash
	ReasonRotationTriggered      = "RotationTriggered"      // a new rotationTrigger value is acted on
)

// Event is something worth telling the user about a decision.
type Event struct {
	Type    string // EventNormal or EventWarning
	Reason  string
	KID     string // "" when it is the key of Plan.Create, until Created fills it in
	Message string
}

// Plan is what should exist after this reconcile.
type Plan struct {
	// Keys are the desired records of the stored keys that remain, sorted:
	// Active, then Next (by ActivatesAt), then Retired (latest RetiredAt
	// first), ties by KID.
	Keys []Key
	// Create is a key to generate before anything else is written.
	Create *NewKey
	// Delete lists the kids whose Secret must be deleted (removed after
	// their overlap, or revoked).
	Delete []string
	// Orphans are the orphans still to publish, RemovesAt set (latest first).
	Orphans []Key
	// ActiveKID is the kid the signing Secret must hold. "" means leave the
	// signing Secret as it is: the Active key is Create's, or suspended with
	// nothing signing.
	ActiveKID string
	// Published are the kids of the documents in order: Active, Next,
	// Retired, then orphans. Never a revoked kid unless suspended.
	Published []string
	Events    []Event
	// HandledTrigger is the value to record as status.lastRotationTrigger.
	HandledTrigger string
	// NextChange is the earliest instant after Now at which Decide would
	// return something else for the same inputs (Now itself when Create is
	// set; zero when suspended or when nothing is scheduled).
	NextChange time.Time
	Suspended  bool
	// PendingRevocations are revoked kids still stored or published, not
	// applied because suspended.
	PendingRevocations []string
	// Blocked says, for humans, why a key that the schedule or a
	// rotationTrigger asks for was not created: the TenantIdentity holds
	// MaxKeys keys. "" when nothing waits.
	Blocked string
}

// Switched completes a reconcile once the signing Secret has switched from
// the key previous to plan.ActiveKID, at the instant at. The writes before
// the switch take time; a key that plan retired stopped signing only now,
// so its retirement and removal move to at (never earlier). It returns the
// plan with that record and whether it changed, for the controller to
// write it.
func Switched(p Policy, plan Plan, previous string, at time.Time) (Plan, *Key) {
	for i, k := range plan.Keys {
		if k.KID == previous && k.State == Retired && at.After(k.RetiredAt) {
			plan.Keys = slices.Clone(plan.Keys)
			plan.Keys[i].RetiredAt = at
			plan.Keys[i].RemovesAt = later(k.RemovesAt, at.Add(p.Retention()))
			plan.NextChange = earliestChange(plan.NextChange, plan.Keys[i].RemovesAt)
			return plan, &plan.Keys[i]
		}
	}
	return plan, nil
}

// earliestChange keeps next unless it is zero.
func earliestChange(next, t time.Time) time.Time {
	if next.IsZero() {
		return t
	}
	return next
}

// Created completes a reconcile once the key first.Create asked for has
// been generated and stored under kid. It returns the input with that
// key's record and the plan for it, which repeats first's decisions and
// creates nothing. The events are first's (the re-plan repeats its
// decisions, so its events would repeat them), each event about the new
// key given its kid.
func Created(in Input, first Plan, kid string) (Input, Plan) {
	rec := first.Create.Record
	rec.KID = kid
	in.Keys = append(slices.Clone(in.Keys), rec)
	plan := Decide(in)
	plan.Events = slices.Clone(first.Events)
	for i, e := range plan.Events {
		if e.KID == "" {
			plan.Events[i].KID = kid
			plan.Events[i].Message = e.Message + " (kid " + kid + ")"
		}
	}
	return in, plan
}

// Decide returns the plan for in. It is pure and deterministic, does not
// depend on the order of in.Keys or in.Orphans, and does not modify in.
//
// The rules apply in this order: suspend; revoke; adopt what a crash or a
// hand edit left; make sure a key is Active; remove; trigger; activate;
// schedule the successor. At most one key is created per call.
func Decide(in Input) Plan {
	if in.Suspend {
		return frozen(in)
	}
	p := newPlanner(in)
	p.revoke()
	p.adopt()
	p.ensureActive()
	p.remove()
	p.trigger()
	p.activate()
	p.scheduleSuccessor()
	return p.plan()
}

// frozen is the plan while suspended: no record is written, no key is
// created, activated or removed, no revocation applies, and the ConfigMap
// and the signing Secret stay exactly as observed. Publishing a key now
// would be a change its record could not account for (its PublishedAt would
// be wrong after resume), and switching the signing key would end a key's
// signing without recording when.
func frozen(in Input) Plan {
	keys := sortedKeys(in.Keys)
	orphans := sortedOrphans(in.Orphans)
	known := make(map[string]bool, len(keys)+len(orphans))
	for _, k := range slices.Concat(keys, orphans) {
		known[k.KID] = true
	}

	published := set(in.PublishedKIDs)
	var kids []string
	for _, k := range slices.Concat(keys, orphans) {
		if published[k.KID] {
			kids = append(kids, k.KID)
		}
	}
	// A published kid the controller reported neither as key nor as orphan
	// still stays published: nothing changes while suspended.
	var unknown []string
	for kid := range published {
		if !known[kid] {
			unknown = append(unknown, kid)
		}
	}
	slices.Sort(unknown)
	kids = append(kids, unknown...)

	var pending []string
	for _, kid := range in.Revoked {
		if known[kid] && !slices.Contains(pending, kid) {
			pending = append(pending, kid)
		}
	}
	return Plan{
		Keys:               keys,
		Orphans:            orphans,
		ActiveKID:          in.SigningKID,
		Published:          kids,
		HandledTrigger:     in.LastTrigger,
		Suspended:          true,
		PendingRevocations: pending,
	}
}

// stateRank orders states as the documents list them.
func stateRank(s State) int {
	switch s {
	case Active:
		return 0
	case Next:
		return 1
	case Retired:
		return 2
	}
	return 3
}

// compareKeys is the order of Plan.Keys: Active, Next by ActivatesAt,
// Retired latest first, ties by KID.
func compareKeys(a, b Key) int {
	if c := cmp.Compare(stateRank(a.State), stateRank(b.State)); c != 0 {
		return c
	}
	switch a.State {
	case Next:
		if c := a.ActivatesAt.Compare(b.ActivatesAt); c != 0 {
			return c
		}
	case Retired:
		if c := b.RetiredAt.Compare(a.RetiredAt); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.KID, b.KID)
}

// compareOrphans lists the orphans that stay longest first.
func compareOrphans(a, b Key) int {
	if c := b.RemovesAt.Compare(a.RemovesAt); c != 0 {
		return c
	}
	return cmp.Compare(a.KID, b.KID)
}

func sortedKeys(keys []Key) []Key {
	out := slices.Clone(keys)
	slices.SortFunc(out, compareKeys)
	return out
}

func sortedOrphans(orphans []Key) []Key {
	out := slices.Clone(orphans)
	for i := range out {
		out[i].State = Retired
	}
	slices.SortFunc(out, compareOrphans)
	return out
}

func set(kids []string) map[string]bool {
	m := make(map[string]bool, len(kids))
	for _, kid := range kids {
		m[kid] = true
	}
	return m
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
