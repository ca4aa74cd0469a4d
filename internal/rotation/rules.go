package rotation

import (
	"fmt"
	"slices"
	"time"
)

// planner is the working copy one Decide call edits, rule after rule. Its
// slices are its own: Input is never written.
type planner struct {
	in     Input
	now    time.Time
	policy Policy

	keys    []Key // stored keys still kept, records as desired so far
	orphans []Key // orphans still published
	create  *NewKey
	deleted []string
	events  []Event

	// revokedSigner holds the revoked kids that were recorded Active or held
	// by the signing Secret: their successor must sign at once.
	revokedSigner []string
	// atOnce is the kid of the Next key ensureActive made sign at once, if any.
	atOnce         string
	handledTrigger string
	blocked        string // why a wanted key was not created
}

func newPlanner(in Input) *planner {
	return &planner{
		in:             in,
		now:            in.Now,
		policy:         in.Policy,
		keys:           sortedKeys(in.Keys),
		orphans:        sortedOrphans(in.Orphans),
		handledTrigger: in.LastTrigger,
	}
}

func (p *planner) emit(typ, reason, kid, format string, args ...any) {
	p.events = append(p.events, Event{Type: typ, Reason: reason, KID: kid, Message: fmt.Sprintf(format, args...)})
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// revoke drops every stored key and orphan listed in Revoked. It runs before
// adoption so that a revoked key never wins an adoption (say, a duplicate
// Active left by a crash) and then needs a second successor.
func (p *planner) revoke() {
	revoked := set(p.in.Revoked)
	if len(revoked) == 0 {
		return
	}
	keep := func(list []Key, stored bool) []Key {
		var kept []Key
		for _, k := range list {
			if !revoked[k.KID] {
				kept = append(kept, k)
				continue
			}
			if stored {
				p.deleted = append(p.deleted, k.KID)
			}
			if k.State == Active || k.KID == p.in.SigningKID {
				p.revokedSigner = append(p.revokedSigner, k.KID)
			}
			p.emit(EventWarning, ReasonKeyRevoked, k.KID, "key %s revoked: unpublished and destroyed", k.KID)
		}
		return kept
	}
	p.keys = keep(p.keys, true)
	p.orphans = keep(p.orphans, false)
}

// adopt repairs what an interrupted reconcile or a hand edit left, always
// towards keeping keys published longer, never shorter.
func (p *planner) adopt() {
	p.adoptDuplicateActive()
	p.adoptUnpublished()
	p.adoptUnscheduledRemovals()
	p.adoptOrphans()
	p.adoptSigningKey() // last: it extends what the others set
}

// adoptDuplicateActive keeps the Active record activated last (ties: the
// greatest KID) and retires the others now: they may have signed until now.
func (p *planner) adoptDuplicateActive() {
	winner := -1
	for i, k := range p.keys {
		if k.State != Active {
			continue
		}
		if winner < 0 {
			winner = i
			continue
		}
		w := p.keys[winner]
		if c := k.ActivatesAt.Compare(w.ActivatesAt); c > 0 || c == 0 && k.KID > w.KID {
			winner = i
		}
	}
	for i, k := range p.keys {
		if k.State == Active && i != winner {
			p.retire(i)
			p.emit(EventWarning, ReasonAdoptedDuplicateActive, k.KID,
				"key %s was recorded Active beside %s after an interrupted reconcile: retired now, published until %s",
				k.KID, p.keys[winner].KID, stamp(p.keys[i].RemovesAt))
		}
	}
}

// adoptUnpublished restarts the pre-publication of a key that is not in the
// ConfigMap: its record says published, but a crash between storing it and
// writing the ConfigMap means verifiers never saw it.
func (p *planner) adoptUnpublished() {
	published := set(p.in.PublishedKIDs)
	for i, k := range p.keys {
		if k.State != Active && !published[k.KID] {
			p.keys[i].PublishedAt = later(k.PublishedAt, p.now)
		}
	}
}

// adoptUnscheduledRemovals gives a Retired record without a removal time a
// full overlap from now, rather than deleting it at once.
func (p *planner) adoptUnscheduledRemovals() {
	for i, k := range p.keys {
		if k.State == Retired && k.RemovesAt.IsZero() {
			p.keys[i].RemovesAt = p.now.Add(p.policy.Retention())
		}
	}
}

// adoptOrphans keeps an orphan whose removal time was lost published for a
// full overlap from now: it may have signed until recently.
func (p *planner) adoptOrphans() {
	for i, o := range p.orphans {
		if o.RemovesAt.IsZero() {
			p.orphans[i].RemovesAt = p.now.Add(p.policy.Retention())
			p.emit(EventWarning, ReasonKeySecretLost, o.KID,
				"key %s is published but its Secret is gone: it stays published until %s", o.KID, stamp(p.orphans[i].RemovesAt))
		}
	}
}

// adoptSigningKey: the signing Secret is written last, so it can still hold
// a key whose record already says Retired. That key signs until the signing
// Secret is switched, now at the earliest, so its overlap counts from now.
// The same holds for an orphan (a signing key whose Secret was deleted by
// hand): the removal time the status remembered is too early.
func (p *planner) adoptSigningKey() {
	kid := p.in.SigningKID
	if kid == "" {
		return
	}
	until := p.now.Add(p.policy.Retention())
	for i, k := range p.keys {
		if k.KID == kid && k.State == Retired {
			p.keys[i].RetiredAt = later(k.RetiredAt, p.now)
			p.keys[i].RemovesAt = later(k.RemovesAt, until)
		}
	}
	for i, o := range p.orphans {
		if o.KID == kid {
			p.orphans[i].RemovesAt = later(o.RemovesAt, until)
		}
	}
}

// ensureActive makes sure some key signs. With no Active record left (it
// was revoked, or its Secret deleted by hand) the successor signs at once:
// the earliest Next if there is one, else a new key. That is the one case
// where a key signs without pre-publication. With no key at all, the new key
// is the tenant's first.
func (p *planner) ensureActive() {
	if a := p.activeIndex(); a >= 0 {
		if len(p.revokedSigner) > 0 {
			p.emit(EventWarning, ReasonRevokedActiveKey, p.revokedSigner[0],
				"signing key %s revoked: %s signs from now on", p.revokedSigner[0], p.keys[a].KID)
		}
		return
	}
	reason, kid, why := p.missingActiveCause()
	if n := p.earliestNext(func(Key) bool { return true }); n >= 0 {
		p.promote(n)
		next := p.keys[n].KID
		p.atOnce = next
		if reason != "" {
			p.emit(EventWarning, reason, kid, "%s: %s signs from now on, without pre-publication", why, next)
		}
		p.emit(EventNormal, ReasonKeyActivated, next, "key %s activated, rotates at %s", next, stamp(p.keys[n].RotatesAt))
		return
	}
	p.createKey(Active, p.now, p.now, p.now.Add(p.policy.RotationPeriod))
	if reason != "" {
		p.emit(EventWarning, reason, kid, "%s: a new key signs from now on, without pre-publication", why)
	}
	p.emit(EventNormal, ReasonKeyCreated, "", "new %s key created, signs from now on", p.policy.Algorithm)
}

// missingActiveCause says why no key is recorded Active: "" for the first
// key of a tenant.
func (p *planner) missingActiveCause() (reason, kid, why string) {
	signing := p.in.SigningKID
	switch {
	case len(p.revokedSigner) > 0:
		return ReasonRevokedActiveKey, p.revokedSigner[0], fmt.Sprintf("signing key %s revoked", p.revokedSigner[0])
	case signing != "" && slices.Contains(p.in.Revoked, signing):
		return ReasonRevokedActiveKey, signing, fmt.Sprintf("signing key %s revoked", signing)
	case signing != "" && !slices.ContainsFunc(p.in.Keys, func(k Key) bool { return k.KID == signing }):
		return ReasonActiveKeySecretLost, signing, fmt.Sprintf("the Secret of signing key %s is gone", signing)
	case signing != "" || len(p.in.Keys) > 0 || len(p.in.Orphans) > 0:
		return ReasonActiveKeySecretLost, "", "no stored key is Active"
	}
	return "", "", ""
}

// remove drops the Retired keys and orphans whose overlap has ended.
func (p *planner) remove() {
	ended := func(k Key) bool { return !p.now.Before(k.RemovesAt) }
	var kept []Key
	for _, k := range p.keys {
		if k.State == Retired && ended(k) {
			p.deleted = append(p.deleted, k.KID)
			p.emit(EventNormal, ReasonKeyRemoved, k.KID, "key %s removed: retired at %s, overlap ended at %s",
				k.KID, stamp(k.RetiredAt), stamp(k.RemovesAt))
			continue
		}
		kept = append(kept, k)
	}
	p.keys = kept

	var orphans []Key
	for _, o := range p.orphans {
		if ended(o) {
			p.emit(EventNormal, ReasonKeyRemoved, o.KID, "key %s unpublished: overlap ended at %s", o.KID, stamp(o.RemovesAt))
			continue
		}
		orphans = append(orphans, o)
	}
	p.orphans = orphans
}

// trigger acts on a new rotationTrigger value. A value is handled once it is
// the last recorded one or a stored key carries it (the status may be lost;
// the keys' records are not). It runs before activate, so that a Next key it
// hurries to now is activated in this same call.
func (p *planner) trigger() {
	t := p.in.Trigger
	if t == "" {
		return
	}
	p.handledTrigger = t
	if t == p.in.LastTrigger || slices.ContainsFunc(p.in.Keys, func(k Key) bool { return k.Trigger == t }) {
		return
	}
	// A key that signs from now on without waiting (the first key, or the
	// successor at once of a lost or revoked key) is the rotation asked for.
	// Recording the value on it also keeps the re-plan from creating a key:
	// with a second Next key stored, the re-plan could pick that one as the
	// successor at once.
	if p.create != nil {
		p.create.Record.Trigger = t
		p.emit(EventNormal, ReasonRotationTriggered, "", "rotationTrigger %q: the new key is the rotation", t)
		return
	}
	if p.atOnce != "" {
		i := slices.IndexFunc(p.keys, func(k Key) bool { return k.KID == p.atOnce })
		p.keys[i].Trigger = t
		p.emit(EventNormal, ReasonRotationTriggered, p.atOnce, "rotationTrigger %q: key %s, signing from now on, is the rotation", t, p.atOnce)
		return
	}
	if n := p.earliestNext(func(Key) bool { return true }); n >= 0 {
		k := &p.keys[n]
		k.Trigger = t
		k.ActivatesAt = earlier(k.ActivatesAt, later(k.PublishedAt.Add(p.policy.PrePublish), p.now))
		p.emit(EventNormal, ReasonRotationTriggered, k.KID, "rotationTrigger %q: key %s activates at %s", t, k.KID, stamp(k.ActivatesAt))
		return
	}
	if p.atKeyLimit() {
		// Not handled: the trigger waits until a key leaves.
		p.handledTrigger = p.in.LastTrigger
		p.block("rotationTrigger %q waits", t)
		return
	}
	activatesAt := p.now.Add(p.policy.PrePublish)
	p.createKey(Next, p.now, activatesAt, time.Time{})
	p.create.Record.Trigger = t
	p.emit(EventNormal, ReasonRotationTriggered, "", "rotationTrigger %q: a new key is published now and activates at %s", t, stamp(activatesAt))
	p.emit(EventNormal, ReasonKeyPublished, "", "new %s key published, activates at %s", p.policy.Algorithm, stamp(activatesAt))
}

// activate lets the eligible Next key with the earliest planned activation
// take over from the Active one: one activation per call.
func (p *planner) activate() {
	if p.create != nil && p.create.Record.State == Active {
		return // the new key is the Active one
	}
	n := p.earliestNext(p.eligible)
	if n < 0 {
		return
	}
	a := p.activeIndex()
	p.promote(n)
	k := p.keys[n]
	p.emit(EventNormal, ReasonKeyActivated, k.KID, "key %s activated, rotates at %s", k.KID, stamp(k.RotatesAt))
	if a >= 0 {
		p.retire(a)
		old := p.keys[a]
		p.emit(EventNormal, ReasonKeyRetired, old.KID, "key %s retired, published until %s", old.KID, stamp(old.RemovesAt))
	}

	// Another Next key (there is at most one unless records were edited by
	// hand) waits for the new period to end; otherwise it would be eligible
	// at once and retire the key just activated on the next call.
	for i, o := range p.keys {
		if o.State == Next {
			p.keys[i].ActivatesAt = later(o.ActivatesAt, k.RotatesAt)
		}
	}
}

// scheduleSuccessor publishes a successor PrePublish before the Active key's
// period ends. After downtime the period may be over already: the successor
// is published now and still waits its full pre-publication.
func (p *planner) scheduleSuccessor() {
	if p.create != nil {
		return
	}
	a := p.activeIndex()
	if a < 0 || slices.ContainsFunc(p.keys, func(k Key) bool { return k.State == Next }) {
		return
	}
	rotatesAt := p.keys[a].RotatesAt
	if p.now.Before(rotatesAt.Add(-p.policy.PrePublish)) {
		return
	}
	if p.atKeyLimit() {
		p.block("the successor of %s waits (%s keeps signing)", p.keys[a].KID, p.keys[a].KID)
		return
	}
	activatesAt := later(rotatesAt, p.now.Add(p.policy.PrePublish))
	p.createKey(Next, p.now, activatesAt, time.Time{})
	p.emit(EventNormal, ReasonKeyPublished, "", "new %s key published to succeed %s, activates at %s",
		p.policy.Algorithm, p.keys[a].KID, stamp(activatesAt))
}

// atKeyLimit says whether the TenantIdentity holds MaxKeys keys already,
// so that a scheduled or triggered key may not be created. (The successor
// of a lost or revoked signing key is created regardless: something must
// sign.)
func (p *planner) atKeyLimit() bool { return len(p.keys)+len(p.orphans) >= MaxKeys }

// block records why a wanted key was not created, and when room is made.
func (p *planner) block(format string, args ...any) {
	msg := fmt.Sprintf(format, args...) + fmt.Sprintf(": %d keys are held, the most allowed", MaxKeys)
	if t := p.nextRemoval(); !t.IsZero() {
		msg += "; the next one leaves at " + stamp(t)
	}
	p.blocked = msg
}

// nextRemoval is the earliest RemovesAt of the Retired keys and orphans.
func (p *planner) nextRemoval() time.Time {
	var next time.Time
	for _, k := range slices.Concat(p.keys, p.orphans) {
		if k.State == Retired && (next.IsZero() || k.RemovesAt.Before(next)) {
			next = k.RemovesAt
		}
	}
	return next
}

// plan assembles the result.
func (p *planner) plan() Plan {
	keys := sortedKeys(p.keys)
	orphans := sortedOrphans(p.orphans)
	var published []string
	activeKID := ""
	for _, k := range keys {
		published = append(published, k.KID)
		if k.State == Active {
			activeKID = k.KID
		}
	}
	for _, o := range orphans {
		published = append(published, o.KID)
	}
	return Plan{
		Keys:           keys,
		Create:         p.create,
		Delete:         p.deleted,
		Orphans:        orphans,
		ActiveKID:      activeKID,
		Published:      published,
		Events:         p.events,
		HandledTrigger: p.handledTrigger,
		NextChange:     p.nextChange(),
		Blocked:        p.blocked,
	}
}

// nextChange is the earliest instant after now at which a rule fires for
// the same inputs: a Next key becomes eligible, the successor is due, a
// Retired key or orphan is removed.
func (p *planner) nextChange() time.Time {
	if p.create != nil {
		return p.now // the controller re-plans at once anyway
	}
	var next time.Time
	consider := func(t time.Time) {
		if t.After(p.now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	hasNext := false
	for _, k := range p.keys {
		switch k.State {
		case Next:
			hasNext = true
			consider(p.eligibleAt(k))
		case Retired:
			consider(k.RemovesAt)
		}
	}
	for _, o := range p.orphans {
		consider(o.RemovesAt)
	}
	if a := p.activeIndex(); a >= 0 && !hasNext && !p.atKeyLimit() {
		// (At the key limit the successor waits for a removal, considered above.)
		consider(p.keys[a].RotatesAt.Add(-p.policy.PrePublish))
	}
	return next
}

// eligibleAt is when a Next key may activate: at its planned time, and not
// before it has been published for PrePublish (of the current policy: a
// longer PrePublish may follow a longer cache age).
func (p *planner) eligibleAt(k Key) time.Time { return k.EligibleAt(p.policy.PrePublish) }

// EligibleAt is when a Next key may start signing: at its planned
// activation, and never before it has been published for prePublish.
func (k Key) EligibleAt(prePublish time.Duration) time.Time {
	return later(k.ActivatesAt, k.PublishedAt.Add(prePublish))
}

func (p *planner) eligible(k Key) bool { return !p.now.Before(p.eligibleAt(k)) }

// activeIndex is the index of the Active key in p.keys, or -1. After
// adoption there is at most one.
func (p *planner) activeIndex() int {
	return slices.IndexFunc(p.keys, func(k Key) bool { return k.State == Active })
}

// earliestNext is the index of the Next key accepted by ok with the
// earliest ActivatesAt (ties: smallest KID), or -1.
func (p *planner) earliestNext(ok func(Key) bool) int {
	best := -1
	for i, k := range p.keys {
		if k.State != Next || !ok(k) {
			continue
		}
		if best < 0 || compareKeys(k, p.keys[best]) < 0 {
			best = i
		}
	}
	return best
}

// promote makes p.keys[i] the Active key from now.
func (p *planner) promote(i int) {
	k := &p.keys[i]
	k.State = Active
	k.ActivatesAt = p.now
	k.RotatesAt = p.now.Add(p.policy.RotationPeriod)
}

// retire records that p.keys[i] stops signing now.
func (p *planner) retire(i int) {
	k := &p.keys[i]
	k.State = Retired
	k.RetiredAt = p.now
	k.RemovesAt = p.now.Add(p.policy.Retention())
}

// createKey asks for one new key with the current policy's parameters.
func (p *planner) createKey(state State, publishedAt, activatesAt, rotatesAt time.Time) {
	p.create = &NewKey{
		Algorithm:  p.policy.Algorithm,
		RSAKeySize: p.policy.RSAKeySize,
		Record: Key{
			Algorithm:   p.policy.Algorithm,
			State:       state,
			PublishedAt: publishedAt,
			ActivatesAt: activatesAt,
			RotatesAt:   rotatesAt,
		},
	}
}
