package rotation

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// t0 is the origin of every test clock; times print as offsets from it.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "t0+" + t.Sub(t0).String()
}

func fmtKey(k Key) string {
	s := fmt.Sprintf("%s %s %s pub=%s act=%s rot=%s ret=%s rem=%s", k.KID, k.Algorithm, k.State,
		fmtTime(k.PublishedAt), fmtTime(k.ActivatesAt), fmtTime(k.RotatesAt), fmtTime(k.RetiredAt), fmtTime(k.RemovesAt))
	if k.Trigger != "" {
		s += fmt.Sprintf(" trigger=%q", k.Trigger)
	}
	return s
}

func fmtEvent(e Event) string { return e.Type[:1] + ":" + e.Reason + ":" + e.KID }

// fmtPlan prints a plan one field a line, so that a test failure shows a
// readable diff. Event messages are left out: tests pin type, reason, kid.
func fmtPlan(p Plan) string {
	var b strings.Builder
	for _, k := range p.Keys {
		fmt.Fprintf(&b, "key     %s\n", fmtKey(k))
	}
	if c := p.Create; c != nil {
		fmt.Fprintf(&b, "create  %s/%d %s\n", c.Algorithm, c.RSAKeySize, fmtKey(c.Record))
	}
	fmt.Fprintf(&b, "delete  %v\n", p.Delete)
	for _, o := range p.Orphans {
		fmt.Fprintf(&b, "orphan  %s\n", fmtKey(o))
	}
	fmt.Fprintf(&b, "active  %q\npublish %v\n", p.ActiveKID, p.Published)
	var events []string
	for _, e := range p.Events {
		events = append(events, fmtEvent(e))
	}
	fmt.Fprintf(&b, "events  %v\n", events)
	fmt.Fprintf(&b, "trigger %q\nnext    %s\n", p.HandledTrigger, fmtTime(p.NextChange))
	fmt.Fprintf(&b, "suspend %v pending %v\n", p.Suspended, p.PendingRevocations)
	if p.Blocked != "" {
		fmt.Fprintf(&b, "blocked %s\n", p.Blocked)
	}
	return b.String()
}

func sameInput(a, b Input) bool {
	return a.Now.Equal(b.Now) && a.Policy == b.Policy && a.Suspend == b.Suspend && a.Trigger == b.Trigger &&
		a.LastTrigger == b.LastTrigger && slices.Equal(a.Revoked, b.Revoked) && sameKeys(a.Keys, b.Keys) &&
		slices.Equal(a.PublishedKIDs, b.PublishedKIDs) && a.SigningKID == b.SigningKID && sameKeys(a.Orphans, b.Orphans)
}

func sameKey(a, b Key) bool {
	return a.KID == b.KID && a.Algorithm == b.Algorithm && a.State == b.State && a.Trigger == b.Trigger &&
		a.PublishedAt.Equal(b.PublishedAt) && a.ActivatesAt.Equal(b.ActivatesAt) && a.RotatesAt.Equal(b.RotatesAt) &&
		a.RetiredAt.Equal(b.RetiredAt) && a.RemovesAt.Equal(b.RemovesAt)
}

func sameKeys(a, b []Key) bool { return slices.EqualFunc(a, b, sameKey) }

// sameOutcome: a and b lead to the same state (what they do to get there,
// events and deletions, aside).
func sameOutcome(a, b Plan) bool {
	sameCreate := a.Create == nil && b.Create == nil ||
		a.Create != nil && b.Create != nil && a.Create.Algorithm == b.Create.Algorithm &&
			a.Create.RSAKeySize == b.Create.RSAKeySize && sameKey(a.Create.Record, b.Create.Record)
	return sameCreate && sameKeys(a.Keys, b.Keys) && sameKeys(a.Orphans, b.Orphans) &&
		a.ActiveKID == b.ActiveKID && slices.Equal(a.Published, b.Published) &&
		a.HandledTrigger == b.HandledTrigger && a.NextChange.Equal(b.NextChange) &&
		a.Suspended == b.Suspended && slices.Equal(a.PendingRevocations, b.PendingRevocations) && a.Blocked == b.Blocked
}

// samePlan: a and b are the same decisions.
func samePlan(a, b Plan) bool {
	sameEvents := slices.EqualFunc(a.Events, b.Events, func(x, y Event) bool { return x == y })
	return sameOutcome(a, b) && slices.Equal(a.Delete, b.Delete) && sameEvents
}

// cloneInput copies every slice of in, so that a later comparison detects
// a write through a shared backing array.
func cloneInput(in Input) Input {
	in.Revoked = slices.Clone(in.Revoked)
	in.Keys = slices.Clone(in.Keys)
	in.PublishedKIDs = slices.Clone(in.PublishedKIDs)
	in.Orphans = slices.Clone(in.Orphans)
	return in
}

// reversed is in with its lists in the opposite order: Decide must not care.
func reversed(in Input) Input {
	in = cloneInput(in)
	slices.Reverse(in.Keys)
	slices.Reverse(in.Orphans)
	slices.Reverse(in.PublishedKIDs)
	return in
}

// decideChecked runs Decide and checks the properties every call must have:
// it leaves its input alone, is deterministic, ignores the order of its
// lists, and its plan is well formed (planProblems).
func decideChecked(in Input) (Plan, []string) {
	snapshot := cloneInput(in)
	plan := Decide(in)
	var problems []string
	if !sameInput(in, snapshot) {
		problems = append(problems, "Decide modified its input")
	}
	if again := Decide(in); !samePlan(plan, again) {
		problems = append(problems, "Decide is not deterministic:\n"+fmtPlan(plan)+"then\n"+fmtPlan(again))
	}
	if rev := Decide(reversed(in)); !samePlan(rev, plan) {
		problems = append(problems, "Decide depends on the order of its input lists:\n"+fmtPlan(plan)+"then\n"+fmtPlan(rev))
	}
	return plan, append(problems, planProblems(in, plan)...)
}

// planProblems checks the structure of one plan against its input.
func planProblems(in Input, p Plan) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	stored := map[string]Key{}
	for _, k := range in.Keys {
		stored[k.KID] = k
	}
	orphans := map[string]Key{}
	for _, o := range in.Orphans {
		orphans[o.KID] = o
	}
	revoked := set(in.Revoked)

	// Invariant 5: one Active record at most, and no stored key lost.
	var actives []string
	for _, k := range p.Keys {
		if k.State == Active {
			actives = append(actives, k.KID)
		}
	}
	createsActive := p.Create != nil && p.Create.Record.State == Active
	switch {
	case len(actives) > 1 && !p.Suspended: // suspended, records stay as a crash left them
		fail("several Active keys: %v", actives)
	case !p.Suspended && createsActive && len(actives) != 0:
		fail("creates an Active key beside Active %v", actives)
	case !p.Suspended && !createsActive && len(actives) != 1:
		fail("no Active key and none created")
	}
	if !slices.IsSortedFunc(p.Keys, compareKeys) {
		fail("Keys not in document order")
	}
	kept := map[string]bool{}
	for _, k := range p.Keys {
		if _, ok := stored[k.KID]; !ok {
			fail("plan invents key %s", k.KID)
		}
		if kept[k.KID] {
			fail("key %s twice", k.KID)
		}
		kept[k.KID] = true
	}
	deleted := map[string]bool{}
	for _, kid := range p.Delete {
		k, ok := stored[kid]
		switch {
		case !ok:
			fail("deletes %s, which is not stored", kid)
		case kept[kid] || deleted[kid]:
			fail("deletes %s and keeps it, or deletes it twice", kid)
		case !revoked[kid] && k.State != Retired:
			fail("deletes %s (%s), neither revoked nor Retired", kid, k.State)
		}
		deleted[kid] = true
	}
	for kid := range stored {
		if !kept[kid] && !deleted[kid] {
			fail("stored key %s neither kept nor deleted", kid)
		}
	}

	// Never a removal earlier than recorded, never an untimed orphan.
	for _, k := range p.Keys {
		if old := stored[k.KID]; old.State == Retired && k.RemovesAt.Before(old.RemovesAt) {
			fail("key %s: RemovesAt moved earlier, %s -> %s", k.KID, fmtTime(old.RemovesAt), fmtTime(k.RemovesAt))
		}
	}
	for _, o := range p.Orphans {
		old, ok := orphans[o.KID]
		switch {
		case !ok:
			fail("plan invents orphan %s", o.KID)
		case o.RemovesAt.Before(old.RemovesAt):
			fail("orphan %s: RemovesAt moved earlier", o.KID)
		case !p.Suspended && !o.RemovesAt.After(in.Now):
			fail("orphan %s kept with RemovesAt %s", o.KID, fmtTime(o.RemovesAt))
		}
	}

	if p.Suspended != in.Suspend {
		fail("Suspended = %v", p.Suspended)
	}
	if p.Suspended {
		if !sameKeys(p.Keys, sortedKeys(in.Keys)) {
			fail("suspended, yet records changed")
		}
		if p.Create != nil || len(p.Delete) > 0 || len(p.Events) > 0 || !p.NextChange.IsZero() {
			fail("suspended, yet creates, deletes, tells or schedules something")
		}
		if p.ActiveKID != in.SigningKID {
			fail("suspended, yet the signing key changes from %q to %q", in.SigningKID, p.ActiveKID)
		}
		if !sameSet(p.Published, in.PublishedKIDs) {
			fail("suspended, yet the documents change: %v -> %v", in.PublishedKIDs, p.Published)
		}
		if p.HandledTrigger != in.LastTrigger {
			fail("suspended, yet HandledTrigger = %q", p.HandledTrigger)
		}
		return problems
	}

	// Invariant 1 and the documents.
	var want []string
	for _, k := range p.Keys {
		want = append(want, k.KID)
	}
	for _, o := range p.Orphans {
		want = append(want, o.KID)
	}
	if !slices.Equal(p.Published, want) {
		fail("Published %v, want keys then orphans %v", p.Published, want)
	}
	wantActive := ""
	if len(actives) == 1 {
		wantActive = actives[0]
	}
	if p.ActiveKID != wantActive {
		fail("ActiveKID %q, Active record %q", p.ActiveKID, wantActive)
	}
	for _, kid := range slices.Concat(p.Published, []string{p.ActiveKID}) {
		if revoked[kid] {
			fail("revoked %s still published or signing", kid)
		}
	}
	if len(p.PendingRevocations) > 0 {
		fail("pending revocations while not suspended")
	}

	if c := p.Create; c != nil {
		if c.Record.KID != "" || c.Algorithm != in.Policy.Algorithm || c.Record.Algorithm != in.Policy.Algorithm ||
			c.RSAKeySize != in.Policy.RSAKeySize || !c.Record.PublishedAt.Equal(in.Now) {
			fail("malformed Create %s", fmtKey(c.Record))
		}
		if !p.NextChange.Equal(in.Now) {
			fail("Create pending, NextChange %s", fmtTime(p.NextChange))
		}
	} else if !p.NextChange.After(in.Now) {
		fail("NextChange %s is not after now %s", fmtTime(p.NextChange), fmtTime(in.Now))
	}
	wantTrigger := in.Trigger
	if wantTrigger == "" || strings.HasPrefix(p.Blocked, fmt.Sprintf("rotationTrigger %q waits", in.Trigger)) {
		wantTrigger = in.LastTrigger
	}
	if p.HandledTrigger != wantTrigger {
		fail("HandledTrigger %q, want %q", p.HandledTrigger, wantTrigger)
	}
	return problems
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// withCreated is in after the controller stored the key plan asked for.
func withCreated(in Input, plan Plan, kid string) (Input, Key) {
	in = cloneInput(in)
	k := plan.Create.Record
	k.KID = kid
	in.Keys = append(in.Keys, k)
	return in, k
}

// replanProblems checks the second call of a reconcile: it accepts the new
// key as-is, creates nothing and repeats the first plan's decisions.
func replanProblems(first Plan, created Key, second Plan) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if second.Create != nil {
		fail("re-plan creates another key: %s", fmtKey(second.Create.Record))
	}
	wantKeys := sortedKeys(append(slices.Clone(first.Keys), created))
	if !sameKeys(second.Keys, wantKeys) {
		fail("re-plan records differ from the first plan's plus the new key:\n%swant\n%s",
			fmtPlan(Plan{Keys: second.Keys}), fmtPlan(Plan{Keys: wantKeys}))
	}
	if !slices.Equal(first.Delete, second.Delete) {
		fail("re-plan deletes %v, first plan %v", second.Delete, first.Delete)
	}
	if !sameKeys(first.Orphans, second.Orphans) {
		fail("re-plan orphans differ")
	}
	wantActive := first.ActiveKID
	if wantActive == "" {
		wantActive = created.KID
	}
	if second.ActiveKID != wantActive || second.HandledTrigger != first.HandledTrigger {
		fail("re-plan active %q trigger %q, first plan %q %q", second.ActiveKID, second.HandledTrigger, first.ActiveKID, first.HandledTrigger)
	}
	return problems
}

// applied is the input the next reconcile sees after plan was fully
// applied, at the same instant or at now.
func applied(in Input, plan Plan, now time.Time) Input {
	in = cloneInput(in)
	in.Now = now
	in.Keys = slices.Clone(plan.Keys)
	in.Orphans = slices.Clone(plan.Orphans)
	in.PublishedKIDs = slices.Clone(plan.Published)
	if plan.ActiveKID != "" {
		in.SigningKID = plan.ActiveKID
	}
	in.LastTrigger = plan.HandledTrigger
	return in
}

// settledProblems checks a plan without Create: applied, it is a fixed
// point, and nothing changes before NextChange while something does at it.
func settledProblems(in Input, plan Plan) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	again := Decide(applied(in, plan, in.Now))
	if again.Create != nil || len(again.Delete) > 0 || len(again.Events) > 0 || !sameOutcome(again, plan) {
		fail("not a fixed point:\n%sthen\n%s", fmtPlan(plan), fmtPlan(again))
	}
	if plan.Suspended {
		return problems
	}
	if plan.NextChange.IsZero() {
		return append(problems, "NextChange zero while not suspended")
	}
	before := Decide(applied(in, plan, plan.NextChange.Add(-time.Nanosecond)))
	if before.Create != nil || len(before.Delete) > 0 || len(before.Events) > 0 ||
		!sameKeys(before.Keys, plan.Keys) || !sameKeys(before.Orphans, plan.Orphans) {
		fail("plan changes before NextChange %s:\n%s", fmtTime(plan.NextChange), fmtPlan(before))
	}
	due := Decide(applied(in, plan, plan.NextChange))
	if due.Create == nil && len(due.Delete) == 0 && sameKeys(due.Keys, plan.Keys) && sameKeys(due.Orphans, plan.Orphans) {
		fail("nothing changes at NextChange %s", fmtTime(plan.NextChange))
	}
	return problems
}
