/*
Copyright 2026 The signet authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package rotation

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestInvariantsRandomized drives a simulated cluster through random spec
// edits, clock jumps, hand deletions and interrupted reconciles, and checks
// the lifecycle invariants on what verifiers and signers would really see:
// the ConfigMap's kids over time and the signing Secret's kid over time.
func TestInvariantsRandomized(t *testing.T) {
	// One seed is one random event sequence. 1,200 of them take about
	// 4 s, and 15 to 20 s with -race (measured on two shared cores).
	seeds, steps := 1200, 150
	if testing.Short() {
		seeds = 30
	}
	t.Logf("running %d random event sequences (seeds 0..%d) of %d steps each", seeds, seeds-1, steps)
	stats := map[string]int{}
	for seed := range uint64(seeds) {
		s := newSim(t, seed)
		for s.step = 1; s.step <= steps && !t.Failed(); s.step++ {
			s.randomStep()
		}
		for k, v := range s.stats {
			stats[k] += v
		}
		if t.Failed() {
			t.Logf("stopped at seed %d of %d", seed, seeds)
			return
		}
	}
	// The test is only as good as what it reached: make sure it reached
	// every rule, every crash point and every exception.
	for _, want := range []string{
		"event " + ReasonKeyCreated, "event " + ReasonKeyPublished, "event " + ReasonKeyActivated,
		"event " + ReasonKeyRetired, "event " + ReasonKeyRemoved, "event " + ReasonKeyRevoked,
		"event " + ReasonRevokedActiveKey, "event " + ReasonActiveKeySecretLost, "event " + ReasonKeySecretLost,
		"event " + ReasonAdoptedDuplicateActive, "event " + ReasonRotationTriggered,
		"crash before storing the new key", "crash amid records", "crash amid deletions",
		"crash before the ConfigMap", "crash before the signing Secret", "crash before the status",
		"suspended", "pending revocation", "switch exempt", "switch pre-published", "unpublish after overlap",
	} {
		if stats[want] == 0 {
			t.Errorf("the simulation never reached %q", want)
		}
	}
	t.Logf("%d random event sequences (seeds) x %d steps: %v", seeds, steps, stats)
}

// history is what the simulation observed about one kid.
type history struct {
	published     bool
	publishedFrom time.Time
	signing       bool
	signed        bool
	stoppedAt     time.Time     // end of its last signing interval
	stopOverlap   time.Duration // the Overlap in force then
	activePP      time.Duration // the PrePublish in force when its record first became Active
	recordActive  bool
	revoked       bool // ever listed in spec.revokedKeyIDs
}

// sim is a cluster: the spec, the key Secrets, the ConfigMap, the signing
// Secret and the status, plus the history of every kid.
type sim struct {
	t    *testing.T
	rng  *rand.Rand
	seed uint64
	step int
	log  []func() string // the last actions, formatted on failure only

	now       time.Time
	policy    Policy
	suspend   bool
	trigger   string
	triggers  int
	revoked   []string
	stored    map[string]Key
	configMap []string
	signing   string

	lastTrigger string // status.lastRotationTrigger
	halfWritten bool   // a reconcile was interrupted, and none completed since (suspended ones don't count)
	// removesAt holds the RemovesAt of the Retired keys and orphans, written
	// with the ConfigMap (as annotations, say): where an orphan's removal
	// time survives both its Secret and a lost status. Kept in the status
	// only, it is lost with it, and the orphan gets a full Overlap of the
	// policy of the moment, which may be shorter than the one it retired
	// with (the simulation found that).
	removesAt map[string]time.Time

	hist       map[string]*history
	kids       int
	everSigned bool
	// signerGone: a reconcile saw the signing or recorded Active key revoked
	// or deleted by hand, and no full reconcile has completed since; the next
	// signing switch may then skip pre-publication.
	signerGone bool
	nextChange time.Time
	stats      map[string]int
}

func newSim(t *testing.T, seed uint64) *sim {
	s := &sim{
		t:      t,
		rng:    rand.New(rand.NewPCG(seed, 0x5167_6e65_74)),
		seed:   seed,
		now:    t0,
		stored: map[string]Key{},
		hist:   map[string]*history{},
		stats:  map[string]int{},
	}
	s.policy = s.randomPolicy()
	return s
}

// logf records an action; its arguments are formatted only on failure.
func (s *sim) logf(format string, args ...any) {
	step, now := s.step, s.now
	s.log = append(s.log, func() string {
		return fmt.Sprintf("step %d %s: ", step, fmtTime(now)) + fmt.Sprintf(format, args...)
	})
	if len(s.log) > 40 {
		s.log = s.log[1:]
	}
}

func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	var recent []string
	for _, f := range s.log {
		recent = append(recent, f())
	}
	s.t.Fatalf("seed %d step %d at %s: %s\npolicy %+v\nrecent:\n  %s", s.seed, s.step, fmtTime(s.now),
		fmt.Sprintf(format, args...), s.policy, strings.Join(recent, "\n  "))
}

// planLine formats a plan on one line, for the log.
type planLine Plan

func (p planLine) String() string { return strings.ReplaceAll(fmtPlan(Plan(p)), "\n", "; ") }

func (s *sim) kid(kid string) *history {
	h := s.hist[kid]
	if h == nil {
		h = &history{}
		s.hist[kid] = h
	}
	return h
}

// randomPolicy satisfies the CRD's validation: RotationPeriod > PrePublish,
// Overlap >= TokenTTL, everything positive.
func (s *sim) randomPolicy() Policy {
	unit := []time.Duration{time.Second, time.Minute, time.Hour}[s.rng.IntN(3)]
	d := func(lo, hi int) time.Duration { return time.Duration(lo+s.rng.IntN(hi-lo+1)) * unit }
	p := Policy{PrePublish: d(1, 60), TokenTTL: d(1, 60)}
	p.RotationPeriod = p.PrePublish + d(1, 300)
	p.Overlap = p.TokenTTL + d(0, 120)
	switch s.rng.IntN(3) {
	case 0:
		p.Algorithm = "ES256"
	case 1:
		p.Algorithm, p.RSAKeySize = "RS256", []int{2048, 3072, 4096}[s.rng.IntN(3)]
	default:
		p.Algorithm = "EdDSA"
	}
	return p
}

// randomStep is a few spec or cluster edits, a clock jump, and a reconcile
// that may be interrupted (and then maybe retried at once).
func (s *sim) randomStep() {
	for range s.rng.IntN(3) {
		s.randomEdit()
	}
	if s.halfWritten && !s.suspend && s.rng.IntN(4) == 0 {
		s.suspend = true // what a crash left, seen through a suspension
		s.logf("suspend true")
	}
	s.tick()
	crash := -1
	if s.rng.IntN(5) == 0 {
		crash = s.rng.IntN(8)
	}
	if !s.reconcile(crash) && s.rng.IntN(2) == 0 {
		s.reconcile(-1)
	}
	s.checkWorld()
}

func (s *sim) randomEdit() {
	switch r := s.rng.IntN(100); {
	case r < 20: // a new trigger, or an older value again, or none
		switch s.rng.IntN(4) {
		case 0:
			s.trigger = ""
		case 1:
			if s.triggers > 0 {
				s.trigger = fmt.Sprintf("t%d", s.rng.IntN(s.triggers))
			}
		default:
			s.trigger = fmt.Sprintf("t%d", s.triggers)
			s.triggers++
		}
		s.logf("trigger %q", s.trigger)
	case r < 32:
		s.revokeSomething()
	case r < 34:
		s.revoked = nil
		s.logf("revokedKeyIDs cleared")
	case r < 44: // suspended for a few steps at a time
		if s.suspend || s.rng.IntN(3) == 0 {
			s.suspend = !s.suspend
			s.logf("suspend %v", s.suspend)
		}
	case r < 54:
		s.policy = s.randomPolicy()
		s.logf("policy %+v", s.policy)
	case r < 56:
		s.deleteByHand()
	case r < 59:
		s.lastTrigger = ""
		s.logf("status lost")
	}
}

func (s *sim) revokeSomething() {
	var candidates []string
	want := []State{Active, Next, Retired}[s.rng.IntN(3)]
	for kid, k := range s.stored {
		if k.State == want {
			candidates = append(candidates, kid)
		}
	}
	for _, kid := range s.configMap {
		if _, ok := s.stored[kid]; !ok && s.rng.IntN(2) == 0 {
			candidates = append(candidates, kid) // an orphan
		}
	}
	slices.Sort(candidates)
	kid := "unknown"
	if len(candidates) > 0 && s.rng.IntN(6) > 0 {
		kid = candidates[s.rng.IntN(len(candidates))]
	}
	s.revoked = append(s.revoked, kid)
	s.kid(kid).revoked = true
	s.logf("revoke %s", kid)
}

// deleteByHand deletes a key Secret behind the controller's back.
func (s *sim) deleteByHand() {
	if len(s.stored) == 0 {
		return
	}
	kids := mapKeys(s.stored)
	kid := kids[s.rng.IntN(len(kids))]
	delete(s.stored, kid)
	s.stats["deleted by hand"]++
	s.logf("Secret of %s deleted by hand", kid)
}

func mapKeys[V any](m map[string]V) []string {
	var kids []string
	for kid := range m {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return kids
}

// tick advances the clock: by a little, by a fraction of a period, by a
// long downtime, or to the plan's NextChange (or 1ns either side of it).
func (s *sim) tick() {
	p := s.policy
	upTo := func(d time.Duration) time.Duration { return time.Duration(1 + s.rng.Int64N(int64(d))) }
	var d time.Duration
	switch r := s.rng.IntN(100); {
	case r < 25:
		d = upTo(p.PrePublish)
	case r < 50:
		d = upTo(p.RotationPeriod)
	case r < 60:
		d = upTo(3 * (p.RotationPeriod + p.Overlap)) // downtime
	case r < 65:
		d = 0 // another reconcile at the same instant
	default:
		if s.nextChange.After(s.now) {
			d = s.nextChange.Sub(s.now) + time.Duration(s.rng.IntN(3)-1)
		} else {
			d = upTo(p.PrePublish)
		}
	}
	s.now = s.now.Add(d)
}

// input is what the controller reads.
func (s *sim) input() Input {
	in := Input{
		Now: s.now, Policy: s.policy, Suspend: s.suspend, Trigger: s.trigger, LastTrigger: s.lastTrigger,
		Revoked: slices.Clone(s.revoked), PublishedKIDs: slices.Clone(s.configMap), SigningKID: s.signing,
	}
	for _, kid := range mapKeys(s.stored) {
		in.Keys = append(in.Keys, s.stored[kid])
	}
	for _, kid := range s.configMap {
		if _, ok := s.stored[kid]; !ok {
			in.Orphans = append(in.Orphans, Key{KID: kid, State: Retired, RemovesAt: s.removesAt[kid]})
		}
	}
	// The controller lists Secrets in no particular order.
	s.rng.Shuffle(len(in.Keys), func(i, j int) { in.Keys[i], in.Keys[j] = in.Keys[j], in.Keys[i] })
	return in
}

func (s *sim) decide(in Input) Plan {
	s.t.Helper()
	s.stats["decide"]++
	plan, problems := decideChecked(in)
	if len(problems) > 0 {
		s.fail("%s\ninput: %+v\nplan:\n%s", strings.Join(problems, "\n"), in, fmtPlan(plan))
	}
	for _, e := range plan.Events {
		s.stats["event "+e.Reason]++
	}
	if plan.Suspended {
		s.stats["suspended"]++
	}
	if len(plan.PendingRevocations) > 0 {
		s.stats["pending revocation"]++
	}
	return plan
}

// reconcile runs the controller's loop. crash >= 0 stops it after that many
// writes (a crash or an error); it reports whether it completed.
func (s *sim) reconcile(crash int) bool {
	s.t.Helper()
	in := s.input()
	if !in.Suspend && s.signerIsGone(in) {
		s.signerGone = true
	}
	writes := 0
	interrupted := func(before string) bool {
		if writes == crash {
			s.stats["crash "+before]++
			s.logf("crash %s", before)
			s.halfWritten = true
			return true
		}
		writes++
		return false
	}

	plan := s.decide(in)
	s.logf("plan: %s", planLine(plan))
	if plan.Create != nil {
		if interrupted("before storing the new key") {
			return false
		}
		s.kids++
		in2, created := withCreated(in, plan, fmt.Sprintf("k%04d", s.kids))
		s.store(created)
		second := s.decide(in2)
		if problems := replanProblems(plan, created, second); len(problems) > 0 {
			s.fail("re-plan: %s\nfirst:\n%ssecond:\n%s", strings.Join(problems, "\n"), fmtPlan(plan), fmtPlan(second))
		}
		in, plan = in2, second
	}
	for _, k := range plan.Keys { // the Active record first
		if old, ok := s.stored[k.KID]; ok && sameKey(old, k) {
			continue
		}
		if interrupted("amid records") {
			return false
		}
		s.store(k)
	}
	for _, kid := range plan.Delete {
		if interrupted("amid deletions") {
			return false
		}
		delete(s.stored, kid)
	}
	if interrupted("before the ConfigMap") {
		return false
	}
	s.writeConfigMap(plan)
	if plan.ActiveKID != "" && plan.ActiveKID != s.signing {
		if interrupted("before the signing Secret") {
			return false
		}
		s.switchSigning(plan.ActiveKID)
	}
	if interrupted("before the status") {
		return false
	}
	s.lastTrigger = plan.HandledTrigger
	s.stats["reconcile completed"]++
	if !plan.Suspended {
		s.signerGone, s.halfWritten = false, false
	}
	s.nextChange = plan.NextChange
	if problems := settledProblems(in, plan); len(problems) > 0 {
		s.fail("%s", strings.Join(problems, "\n"))
	}
	return true
}

// signerIsGone: the signing key or the recorded Active key was revoked or
// deleted by hand, or no key is recorded Active: its successor may sign at
// once.
func (s *sim) signerIsGone(in Input) bool {
	revoked := set(in.Revoked)
	if in.SigningKID != "" {
		if _, ok := s.stored[in.SigningKID]; !ok || revoked[in.SigningKID] {
			return true
		}
	}
	hasActive := false
	for _, k := range in.Keys {
		if k.State == Active {
			hasActive = true
			if revoked[k.KID] {
				return true
			}
		}
	}
	return !hasActive && (len(in.Keys) > 0 || in.SigningKID != "")
}

func (s *sim) store(k Key) {
	s.stored[k.KID] = k
	if h := s.kid(k.KID); k.State == Active && !h.recordActive {
		h.recordActive, h.activePP = true, s.policy.PrePublish
	}
}

// writeConfigMap checks invariant 3 for every kid it unpublishes.
func (s *sim) writeConfigMap(plan Plan) {
	s.t.Helper()
	kids := plan.Published
	next := set(kids)
	for _, kid := range s.configMap {
		if next[kid] {
			continue
		}
		h := s.kid(kid)
		h.published = false
		switch {
		case h.revoked:
		case h.signing:
			s.fail("invariant 3: %s unpublished while it signs", kid)
		case h.signed && s.now.Before(h.stoppedAt.Add(h.stopOverlap)):
			s.fail("invariant 3: %s unpublished at %s, %s after it stopped signing at %s; overlap %s",
				kid, fmtTime(s.now), s.now.Sub(h.stoppedAt), fmtTime(h.stoppedAt), h.stopOverlap)
		case h.signed:
			s.stats["unpublish after overlap"]++
		}
	}
	for _, kid := range kids {
		if h := s.kid(kid); !h.published {
			h.published, h.publishedFrom = true, s.now
		}
	}
	s.configMap = slices.Clone(kids)
	s.removesAt = map[string]time.Time{}
	for _, k := range slices.Concat(plan.Keys, plan.Orphans) {
		if k.State == Retired {
			s.removesAt[k.KID] = k.RemovesAt
		}
	}
}

// switchSigning checks invariant 2 for the key that starts signing.
func (s *sim) switchSigning(kid string) {
	s.t.Helper()
	if old := s.signing; old != "" {
		h := s.kid(old)
		h.signing, h.stoppedAt, h.stopOverlap = false, s.now, s.policy.Overlap
	}
	h := s.kid(kid)
	switch {
	case !s.everSigned || s.signerGone:
		s.stats["switch exempt"]++
	case !h.published:
		s.fail("invariant 2: %s signs while not published", kid)
	case s.now.Sub(h.publishedFrom) < h.activePP:
		s.fail("invariant 2: %s signs %s after its publication at %s; prePublish %s",
			kid, s.now.Sub(h.publishedFrom), fmtTime(h.publishedFrom), h.activePP)
	default:
		s.stats["switch pre-published"]++
	}
	h.signing, h.signed = true, true
	s.signing, s.everSigned = kid, true
	s.logf("signing %s", kid)
}

// checkWorld checks what holds at every instant, crashes included.
func (s *sim) checkWorld() {
	s.t.Helper()
	// Invariant 1: verifiers can verify what is signed now (a revoked key
	// aside: it is unpublished before the signing Secret is switched).
	if s.signing != "" && !slices.Contains(s.configMap, s.signing) && !s.kid(s.signing).revoked {
		s.fail("invariant 1: signing key %s is not published: %v", s.signing, s.configMap)
	}
	// Invariant 5: never two Active records.
	var actives []string
	for _, kid := range mapKeys(s.stored) {
		if s.stored[kid].State == Active {
			actives = append(actives, kid)
		}
	}
	// An interrupted reconcile may leave two (records are one Secret each);
	// the next one adopts them (after suspend, if suspended).
	if len(actives) > 1 && !s.halfWritten {
		s.fail("invariant 5: several Active records %v", actives)
	}
}
