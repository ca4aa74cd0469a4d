package rotation_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	// The package under test, dot-imported as in its own tests: the
	// simulation is outside it only to use rotationtest, which imports it.
	. "github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/rotation/rotationtest"
)

// TestInvariantsRandomized drives a simulated cluster through random spec
// edits, clock jumps, hand deletions and interrupted reconciles, and shows
// rotationtest's checker what verifiers and signers would really see after
// every single write: the ConfigMap's kids, the signing Secret's kid and the
// stored records.
func TestInvariantsRandomized(t *testing.T) {
	// One seed is one random event sequence. 1,200 of them take about 8 s
	// of CPU, 27 s with -race (two cores shared with four other builds);
	// the checker after every write costs about a quarter of that.
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
		s.countChecks()
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
		"crash before storing the new key", "crash amid records", "crash before the ConfigMap",
		"crash before the signing Secret", "crash amid deletions", "crash before the status",
		"suspended", "pending revocation", "deleted by hand",
		"switch exempt", "switch pre-published", "unpublish after overlap", "removal after RemovesAt",
	} {
		if stats[want] == 0 {
			t.Errorf("the simulation never reached %q", want)
		}
	}
	t.Logf("%d random event sequences (seeds) x %d steps: %v", seeds, steps, stats)
}

// sim is a cluster: the spec, the key Secrets, the ConfigMap, the signing
// Secret and the status, watched by the invariant checker.
type sim struct {
	t     *testing.T
	rng   *rand.Rand
	seed  uint64
	step  int
	log   []func() string // the last actions, formatted on failure only
	check *rotationtest.Checker

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

	kids       int
	nextChange time.Time
	stats      map[string]int
}

func newSim(t *testing.T, seed uint64) *sim {
	s := &sim{
		t:      t,
		rng:    rand.New(rand.NewPCG(seed, 0x5167_6e65_74)),
		seed:   seed,
		check:  rotationtest.New(T0),
		now:    T0,
		stored: map[string]Key{},
		stats:  map[string]int{},
	}
	s.policy = s.randomPolicy()
	return s
}

// logf records an action; its arguments are formatted only on failure.
func (s *sim) logf(format string, args ...any) {
	step, now := s.step, s.now
	s.log = append(s.log, func() string {
		return fmt.Sprintf("step %d %s: ", step, FmtTime(now)) + fmt.Sprintf(format, args...)
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
	s.t.Fatalf("seed %d step %d at %s: %s\npolicy %+v\nrecent:\n  %s", s.seed, s.step, FmtTime(s.now),
		fmt.Sprintf(format, args...), s.policy, strings.Join(recent, "\n  "))
}

// observe shows the checker the world as it is now.
func (s *sim) observe(kind rotationtest.Kind) {
	s.t.Helper()
	o := rotationtest.Observation{
		At: s.now, Kind: kind, PrePublish: s.policy.PrePublish, Overlap: s.policy.Retention(),
		Suspended: s.suspend, Revoked: s.revoked, Published: s.configMap, Signing: s.signing,
	}
	o.Records = make([]Key, 0, len(s.stored))
	for _, k := range s.stored { // in any order
		o.Records = append(o.Records, k)
	}
	if vs := s.check.Observe(o); len(vs) > 0 {
		var msgs []string
		for _, v := range vs {
			msgs = append(msgs, v.String())
		}
		s.fail("%s (observed %s)", strings.Join(msgs, "\n"), kind)
	}
}

// countChecks adds what the checker judged to the statistics.
func (s *sim) countChecks() {
	c := s.check.Counts()
	s.stats["switch exempt"] += c.ExemptSwitches
	s.stats["switch pre-published"] += c.PrePublishedSwitches
	s.stats["unpublish after overlap"] += c.UnpublishedInTime
	s.stats["removal after RemovesAt"] += c.Removed
}

// planLine formats a plan on one line, for the log.
type planLine Plan

func (p planLine) String() string { return strings.ReplaceAll(FmtPlan(Plan(p)), "\n", "; ") }

// randomPolicy satisfies the CRD's validation: RotationPeriod > PrePublish,
// Overlap >= TokenTTL, everything positive. Half the time a workload mounts
// the signing Secret and takes a while to see it switch.
func (s *sim) randomPolicy() Policy {
	unit := []time.Duration{time.Second, time.Minute, time.Hour}[s.rng.IntN(3)]
	d := func(lo, hi int) time.Duration { return time.Duration(lo+s.rng.IntN(hi-lo+1)) * unit }
	p := Policy{PrePublish: d(1, 60), TokenTTL: d(1, 60)}
	p.RotationPeriod = p.PrePublish + d(1, 300)
	p.Overlap = p.TokenTTL + d(0, 120)
	if s.rng.IntN(2) == 0 {
		p.SigningPropagation = d(0, 30)
	}
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
	s.observe(rotationtest.ByHand)
	s.tick()
	crash := -1
	if s.rng.IntN(5) == 0 {
		crash = s.rng.IntN(8)
	}
	if !s.reconcile(crash) && s.rng.IntN(2) == 0 {
		s.reconcile(-1)
	}
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
	s.revoked = append(slices.Clone(s.revoked), kid)
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
	plan, problems := DecideChecked(in)
	if len(problems) > 0 {
		s.fail("%s\ninput: %+v\nplan:\n%s", strings.Join(problems, "\n"), in, FmtPlan(plan))
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

// reconcile runs the controller's loop in the order rotation's doc gives.
// crash >= 0 stops it after that many writes (a crash or an error); it
// reports whether it completed. The checker sees the world after every
// write.
func (s *sim) reconcile(crash int) bool {
	s.t.Helper()
	in := s.input()
	writes := 0
	write := func(before string, do func()) bool {
		if writes == crash {
			s.stats["crash "+before]++
			s.logf("crash %s", before)
			s.halfWritten = true
			return false
		}
		writes++
		do()
		s.observe(rotationtest.Partial)
		return true
	}

	plan := s.decide(in)
	s.logf("plan: %s", planLine(plan))
	if plan.Create != nil {
		s.kids++
		kid := fmt.Sprintf("k%04d", s.kids)
		in2, second := Created(in, plan, kid)
		created := in2.Keys[len(in2.Keys)-1]
		if !write("before storing the new key", func() { s.stored[kid] = created }) {
			return false
		}
		s.checkReplan(in2, plan, created, second)
		in, plan = in2, second
	}
	for _, k := range plan.Keys { // the Active record first
		if old, ok := s.stored[k.KID]; ok && SameKey(old, k) {
			continue
		}
		if !write("amid records", func() { s.stored[k.KID] = k }) {
			return false
		}
	}
	if !write("before the ConfigMap", func() { s.writeConfigMap(plan) }) {
		return false
	}
	if plan.ActiveKID != "" && plan.ActiveKID != s.signing {
		if !write("before the signing Secret", func() { s.signing = plan.ActiveKID; s.logf("signing %s", s.signing) }) {
			return false
		}
	}
	for _, kid := range plan.Delete {
		if !write("amid deletions", func() { delete(s.stored, kid) }) {
			return false
		}
	}
	if writes == crash {
		s.stats["crash before the status"]++
		s.logf("crash before the status")
		s.halfWritten = true
		return false
	}
	s.lastTrigger = plan.HandledTrigger
	s.stats["reconcile completed"]++
	if !plan.Suspended {
		s.halfWritten = false
	}
	s.nextChange = plan.NextChange
	s.observe(rotationtest.Reconciled)
	if problems := SettledProblems(in, plan); len(problems) > 0 {
		s.fail("%s", strings.Join(problems, "\n"))
	}
	return true
}

// checkReplan checks the plan Created returned: well formed, the same as
// deciding again, and a repetition of the first plan's decisions.
func (s *sim) checkReplan(in Input, first Plan, created Key, second Plan) {
	s.t.Helper()
	again, problems := DecideChecked(in)
	problems = append(problems, PlanProblems(in, second)...)
	if FmtPlan(again) != FmtPlan(withEvents(second, again.Events)) {
		problems = append(problems, "Created's plan differs from Decide's on the same input:\n"+FmtPlan(second)+"then\n"+FmtPlan(again))
	}
	problems = append(problems, ReplanProblems(first, created, second)...)
	if len(problems) > 0 {
		s.fail("re-plan: %s\nfirst:\n%ssecond:\n%s", strings.Join(problems, "\n"), FmtPlan(first), FmtPlan(second))
	}
}

func withEvents(p Plan, events []Event) Plan {
	p.Events = events
	return p
}

func (s *sim) writeConfigMap(plan Plan) {
	s.configMap = slices.Clone(plan.Published)
	s.removesAt = map[string]time.Time{}
	for _, k := range slices.Concat(plan.Keys, plan.Orphans) {
		if k.State == Retired {
			s.removesAt[k.KID] = k.RemovesAt
		}
	}
}
