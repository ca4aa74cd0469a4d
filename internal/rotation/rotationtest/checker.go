// Package rotationtest checks the key-lifecycle invariants on what a test
// observes over time, so that the policy's simulation (internal/rotation)
// and the controller's envtest harness (controllers/) judge with one
// implementation. It is imported by tests only.
//
// A test shows the Checker every state it observes, in order: the kids of
// the published documents, the kid the signing Secret holds, the stored
// records, and the spec facts the invariants depend on. The Checker reports
// a violation of:
//
//  1. the published documents contain the signing key (revocation aside: a
//     revoked key leaves the documents before the signing Secret switches);
//  2. a key starts signing only once it has been published for PrePublish,
//     except the first key and the successor of a revoked or lost key;
//  3. a key leaves the documents only Overlap after it stopped signing,
//     revocation aside;
//  5. no stored key is lost (a record disappears only when it was revoked or
//     was Retired and past its RemovesAt), and a completed reconcile never
//     leaves two Active records.
//
// (Invariant 4, no private key material outside Secrets, is not about the
// lifecycle; it is checked where material could leak.)
//
// The Checker is told of revocations by Observation.Revoked, and of losses
// by observing the world after every hand edit with Kind ByHand: a record
// that vanished then was deleted by hand, and its successor may sign at
// once.
package rotationtest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signet-dev/signet/internal/rotation"
)

// Kind says who made the state observed, and so what is judged.
type Kind int

const (
	// Reconciled: a reconcile completed. Everything is judged.
	Reconciled Kind = iota
	// Partial: a reconcile stopped part-way (a crash, an injected failure)
	// or is between two of its writes. Everything but the two Active
	// records is judged: records are one Secret each, so a reconcile
	// interrupted amid them may leave two, which the next one adopts.
	Partial
	// ByHand: something other than the controller changed the world (the
	// test, an operator, a tenant). Nothing is judged; what changed is
	// remembered: a key whose record vanished was lost by hand.
	ByHand
)

func (k Kind) String() string {
	switch k {
	case Reconciled:
		return "reconciled"
	case Partial:
		return "partial"
	case ByHand:
		return "by hand"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Observation is one state of the world for one TenantIdentity.
type Observation struct {
	At   time.Time
	Kind Kind

	// PrePublish and Overlap are the policy in force at At. A key's
	// pre-publication is judged with the PrePublish in force when its
	// record was first seen Active (the activation was decided then); its
	// overlap with the Overlap in force when it stopped signing. Overlap is
	// what the key must stay published for: with a signing propagation
	// delay, rotation.Policy.Retention().
	PrePublish time.Duration
	Overlap    time.Duration

	// Suspended is spec.suspend: a suspended reconcile writes no record,
	// so two Active records it completes with were left by an interrupted
	// one (and are adopted after resume).
	Suspended bool
	// Revoked is spec.revokedKeyIDs. A key that left the documents while
	// listed may go on signing unpublished until the signing Secret
	// switches, even if the list is cleared meanwhile.
	Revoked []string
	// Published are the kids of the published documents, in order.
	Published []string
	// Signing is the kid the signing Secret holds, "" when there is none.
	Signing string
	// Records are the stored keys' records, in any order.
	Records []rotation.Key
}

// Violation is one invariant broken at one observation.
type Violation struct {
	At        time.Time
	Invariant int // 1, 2, 3 or 5
	KID       string
	Message   string
}

func (v Violation) String() string { return fmt.Sprintf("invariant %d: %s", v.Invariant, v.Message) }

// Activation is one change of the signing key.
type Activation struct {
	KID    string
	At     time.Time
	Exempt bool // the first key, or the successor of a revoked or lost key
}

// Counts are what the Checker judged and found right, so that a test can
// show it reached the cases it means to check.
type Counts struct {
	PrePublishedSwitches int // signing-key changes after a full pre-publication
	ExemptSwitches       int // the first key, or a successor at once
	UnpublishedInTime    int // keys that had signed and left the documents after their overlap
	Removed              int // records gone after their RemovesAt
}

// Checker follows one TenantIdentity's observations. The zero value is not
// ready: use New.
type Checker struct {
	origin time.Time
	counts Counts

	since      map[string]time.Time     // published kids, since when
	stopped    map[string]stop          // kids that stopped signing
	records    map[string]record        // as last observed
	activePP   map[string]time.Duration // PrePublish when the record was first seen Active
	revokedOut map[string]bool          // kids that left the documents while revoked
	lost       map[string]bool          // records deleted by hand
	signer     string                   // the last signing kid observed ("" before the first)
	// signerGone: the signer or a key recorded Active was revoked or lost
	// since the signer last changed; the next one may sign at once.
	signerGone  bool
	excused     map[string]bool // the gone keys that set signerGone
	activations []Activation
}

// record is what the Checker keeps of a stored record.
type record struct {
	state     rotation.State
	removesAt time.Time
}

type stop struct {
	at      time.Time
	overlap time.Duration
}

// New returns a Checker that prints times as offsets from origin (the
// test clock's start).
func New(origin time.Time) *Checker {
	return &Checker{
		origin:     origin,
		since:      map[string]time.Time{},
		stopped:    map[string]stop{},
		records:    map[string]record{},
		activePP:   map[string]time.Duration{},
		revokedOut: map[string]bool{},
		lost:       map[string]bool{},
		excused:    map[string]bool{},
	}
}

// Activations are the signing-key changes observed, in order.
func (c *Checker) Activations() []Activation { return slices.Clone(c.activations) }

// Counts are the judgments passed so far.
func (c *Checker) Counts() Counts { return c.counts }

// Observe takes the next state and returns the violations it shows.
func (c *Checker) Observe(o Observation) []Violation {
	j := &judgment{c: c, o: o}
	for _, kid := range o.Published {
		if _, ok := c.since[kid]; !ok {
			c.since[kid] = o.At
		}
	}
	j.records()
	j.signing()
	j.unpublished()
	j.signingPublished()
	j.actives()
	// Map order aside, the same history gives the same report.
	slices.SortStableFunc(j.violations, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Invariant, b.Invariant), cmp.Compare(a.KID, b.KID))
	})
	return j.violations
}

// judgment is the work on one observation.
type judgment struct {
	c          *Checker
	o          Observation
	violations []Violation
}

func (j *judgment) judged() bool { return j.o.Kind != ByHand }

func (j *judgment) report(invariant int, kid, format string, args ...any) {
	if j.judged() {
		j.violations = append(j.violations, Violation{At: j.o.At, Invariant: invariant, KID: kid, Message: fmt.Sprintf(format, args...)})
	}
}

func (j *judgment) count(n *int) {
	if j.judged() {
		*n++
	}
}

// published and revoked look through short lists (a TenantIdentity holds
// at most rotation.MaxKeys keys): cheaper than a map per observation.
func (j *judgment) published(kid string) bool { return slices.Contains(j.o.Published, kid) }
func (j *judgment) revoked(kid string) bool   { return slices.Contains(j.o.Revoked, kid) }

func (j *judgment) gone(kid string) bool { return j.revoked(kid) || j.c.lost[kid] }

// records checks that no key was lost (invariant 5), learns the keys lost
// by hand, and notes when a signer is gone.
func (j *judgment) records() {
	c, o := j.c, j.o
	for kid, old := range c.records {
		if slices.ContainsFunc(o.Records, func(k rotation.Key) bool { return k.KID == kid }) {
			continue
		}
		switch {
		case o.Kind == ByHand:
			c.lost[kid] = true
		case j.revoked(kid) || c.lost[kid]:
		case old.state == rotation.Retired && !old.removesAt.IsZero() && !o.At.Before(old.removesAt):
			j.count(&c.counts.Removed)
		default:
			j.report(5, kid, "key %s lost: its record is gone, last %s (removes at %s)", kid, old.state, c.fmt(old.removesAt))
		}
	}
	// The signer, or a key recorded Active before or now (the signing
	// Secret may not hold it yet), revoked or lost: its successor signs at
	// once. Each such key excuses one change of the signer, not every later
	// one while its record lingers.
	goneSigner := func(kid string) {
		if j.gone(kid) && !c.excused[kid] {
			c.excused[kid], c.signerGone = true, true
		}
	}
	if c.signer != "" {
		goneSigner(c.signer)
	}
	for kid, r := range c.records {
		if r.state == rotation.Active {
			goneSigner(kid)
		}
	}
	for _, k := range o.Records {
		if k.State != rotation.Active {
			continue
		}
		goneSigner(k.KID)
		if _, ok := c.activePP[k.KID]; !ok {
			c.activePP[k.KID] = o.PrePublish
		}
	}
	clear(c.records)
	for _, k := range o.Records {
		c.records[k.KID] = record{state: k.State, removesAt: k.RemovesAt}
	}
}

// signing checks a change of the signing key against its pre-publication
// (invariant 2) and records when the replaced key stopped signing.
func (j *judgment) signing() {
	c, o := j.c, j.o
	kid, prev := o.Signing, c.signer
	if kid == "" || kid == prev {
		return // no signing Secret (deleted by hand, or none yet) changes nothing
	}
	exempt := prev == "" || c.signerGone
	pp, ok := c.activePP[kid]
	if !ok {
		pp = o.PrePublish
	}
	switch since := c.since[kid]; {
	case exempt:
		j.count(&c.counts.ExemptSwitches)
	case !j.published(kid):
		// invariant 1 reports it
	case o.At.Sub(since) < pp:
		j.report(2, kid, "%s signs %s after its publication at %s, want >= prePublish %s",
			kid, o.At.Sub(since), c.fmt(since), pp)
	default:
		j.count(&c.counts.PrePublishedSwitches)
	}
	if prev != "" {
		c.stopped[prev] = stop{at: o.At, overlap: o.Overlap}
	}
	c.signer, c.signerGone = kid, false
	c.activations = append(c.activations, Activation{KID: kid, At: o.At, Exempt: exempt})
}

// unpublished checks every kid that left the documents (invariant 3).
func (j *judgment) unpublished() {
	c, o := j.c, j.o
	for kid := range c.since {
		if j.published(kid) {
			continue
		}
		delete(c.since, kid)
		st, signed := c.stopped[kid]
		switch {
		case j.revoked(kid):
			c.revokedOut[kid] = true
		case kid == c.signer, !signed:
			// The signer: invariant 1 reports it. A key that never signed
			// has no token to verify.
		case o.At.Before(st.at.Add(st.overlap)):
			j.report(3, kid, "%s left the documents %s after it stopped signing at %s, want >= overlap %s",
				kid, o.At.Sub(st.at), c.fmt(st.at), st.overlap)
		default:
			j.count(&c.counts.UnpublishedInTime)
		}
	}
}

// signingPublished: what signs now can be verified (invariant 1).
func (j *judgment) signingPublished() {
	kid := j.o.Signing
	if kid != "" && !j.published(kid) && !j.revoked(kid) && !j.c.revokedOut[kid] {
		j.report(1, kid, "signing key %s is not published: %q", kid, j.o.Published)
	}
}

// actives: a completed reconcile leaves at most one Active record
// (invariant 5). None is no violation: a refused TenantIdentity has no key.
func (j *judgment) actives() {
	if j.o.Kind != Reconciled || j.o.Suspended {
		return
	}
	var actives []string
	for _, k := range j.o.Records {
		if k.State == rotation.Active {
			actives = append(actives, k.KID)
		}
	}
	if len(actives) > 1 {
		slices.Sort(actives)
		j.report(5, actives[0], "%d keys recorded Active after a reconcile: %s", len(actives), strings.Join(actives, ", "))
	}
}

func (c *Checker) fmt(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if c.origin.IsZero() {
		return t.Format(time.RFC3339Nano)
	}
	return "t0+" + t.Sub(c.origin).String()
}
