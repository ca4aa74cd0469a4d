package rotation

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	ns = time.Nanosecond
	m  = time.Minute
	h  = time.Hour
)

// pol is the policy of the table tests: a 10h period, a successor published
// 1h before it ends, a retired key kept 3h.
var pol = Policy{Algorithm: "ES256", RotationPeriod: 10 * h, PrePublish: 1 * h, Overlap: 3 * h, TokenTTL: 1 * h}

func nextKey(kid string, published, activates time.Duration) Key {
	return Key{KID: kid, Algorithm: "ES256", State: Next, PublishedAt: at(published), ActivatesAt: at(activates)}
}

// activeKey was published, then activated at activated, for one period of pol.
func activeKey(kid string, published, activated time.Duration) Key {
	return Key{KID: kid, Algorithm: "ES256", State: Active, PublishedAt: at(published),
		ActivatesAt: at(activated), RotatesAt: at(activated + pol.RotationPeriod)}
}

// retiredKey is activeKey retired at retired, kept for pol's overlap.
func retiredKey(kid string, published, activated, retired time.Duration) Key {
	k := activeKey(kid, published, activated)
	k.State, k.RetiredAt, k.RemovesAt = Retired, at(retired), at(retired+pol.Overlap)
	return k
}

func orphan(kid string, removes time.Duration) Key {
	o := Key{KID: kid, State: Retired}
	if removes != 0 {
		o.RemovesAt = at(removes)
	}
	return o
}

func withTrigger(k Key, trigger string) Key { k.Trigger = trigger; return k }

// world is a settled cluster at now: every key published, the Active one
// signing.
func world(now time.Duration, keys ...Key) Input {
	in := Input{Now: at(now), Policy: pol, Keys: keys}
	for _, k := range keys {
		in.PublishedKIDs = append(in.PublishedKIDs, k.KID)
		if k.State == Active {
			in.SigningKID = k.KID
		}
	}
	return in
}

func with(in Input, edit func(*Input)) Input { edit(&in); return in }

func create(state State, published, activates, rotates time.Duration, trigger string) *NewKey {
	r := Key{Algorithm: "ES256", State: state, PublishedAt: at(published), ActivatesAt: at(activates), Trigger: trigger}
	if state == Active {
		r.RotatesAt = at(rotates)
	}
	return &NewKey{Algorithm: "ES256", Record: r}
}

func TestDecide(t *testing.T) {
	a := activeKey("A", 0, 0)    // signs 0..10h
	n := nextKey("N", 9*h, 10*h) // its successor, published on time
	// full holds MaxKeys keys at 2h: A Active and R1..R9 Retired, the
	// first of them leaving at 9h31m (hand-made: triggers came fast).
	full := world(2*h, a)
	for i := 1; i < MaxKeys; i++ {
		r := retiredKey(fmt.Sprintf("R%d", i), -10*h, -9*h, -time.Duration(i)*m)
		r.RemovesAt = at(9*h + 30*m + time.Duration(i)*m)
		full.Keys = append(full.Keys, r)
		full.PublishedKIDs = append(full.PublishedKIDs, r.KID)
	}
	fullPublished := full.PublishedKIDs
	slices.SortFunc(full.Keys, compareKeys)
	cases := []struct {
		name   string
		in     Input
		want   Plan
		events []string // "N:Reason:kid" or "W:Reason:kid"
	}{
		// Rule 8, first key.
		{
			name:   "first key is Active at once",
			in:     Input{Now: at(0), Policy: pol},
			want:   Plan{Create: create(Active, 0, 0, 10*h, ""), NextChange: at(0)},
			events: []string{"N:KeyCreated:"},
		},
		{
			name: "first key stored, not published yet: published and signing now",
			in:   Input{Now: at(0), Policy: pol, Keys: []Key{a}},
			want: Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
		},
		{
			name: "steady state: nothing to do until the successor is due",
			in:   world(5*h, a),
			want: Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
		},

		// Rule 7, successor.
		{
			name: "successor not due 1ns before RotatesAt-PrePublish",
			in:   world(9*h-ns, a),
			want: Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
		},
		{
			name:   "successor published PrePublish before RotatesAt, activates at RotatesAt",
			in:     world(9*h, a),
			want:   Plan{Keys: []Key{a}, Create: create(Next, 9*h, 10*h, 0, ""), ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
			events: []string{"N:KeyPublished:"},
		},
		{
			name: "successor waits for RotatesAt",
			in:   world(9*h+30*m, a, n),
			want: Plan{Keys: []Key{a, n}, ActiveKID: "A", Published: []string{"A", "N"}, NextChange: at(10 * h)},
		},

		// Rule 5, activation.
		{
			name: "activation at RotatesAt; the old key retires for Overlap",
			in:   world(10*h, a, n),
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(13 * h),
			},
			events: []string{"N:KeyActivated:N", "N:KeyRetired:A"},
		},
		{
			name: "activation waits for PrePublish after publication, even past ActivatesAt",
			in:   world(10*h, a, nextKey("N", 9*h+30*m, 10*h)),
			want: Plan{
				Keys:      []Key{a, nextKey("N", 9*h+30*m, 10*h)},
				ActiveKID: "A", Published: []string{"A", "N"}, NextChange: at(10*h + 30*m),
			},
		},
		{
			name: "two Next records: the earliest activates, the other waits for the new period",
			in:   world(10*h+30*m, a, n, nextKey("M", 9*h, 10*h+30*m)),
			want: Plan{
				Keys: []Key{
					activeKey("N", 9*h, 10*h+30*m), nextKey("M", 9*h, 20*h+30*m),
					retiredKey("A", 0, 0, 10*h+30*m),
				},
				ActiveKID: "N", Published: []string{"N", "M", "A"}, NextChange: at(13*h + 30*m),
			},
			events: []string{"N:KeyActivated:N", "N:KeyRetired:A"},
		},

		// Rule 4, removal.
		{
			name: "retired key kept until 1ns before RemovesAt",
			in:   world(13*h-ns, activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h)),
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(13 * h),
			},
		},
		{
			name: "retired key removed at RemovesAt",
			in:   world(13*h, activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h)),
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 10*h)}, Delete: []string{"A"},
				ActiveKID: "N", Published: []string{"N"}, NextChange: at(19 * h),
			},
			events: []string{"N:KeyRemoved:A"},
		},

		// Rule 6, trigger.
		{
			name: "trigger without a Next key publishes one now",
			in:   with(world(2*h, a), func(in *Input) { in.Trigger = "t1" }),
			want: Plan{
				Keys: []Key{a}, Create: create(Next, 2*h, 3*h, 0, "t1"),
				ActiveKID: "A", Published: []string{"A"}, HandledTrigger: "t1", NextChange: at(2 * h),
			},
			events: []string{"N:RotationTriggered:", "N:KeyPublished:"},
		},
		{
			name: "trigger hurries a Next key to PublishedAt+PrePublish",
			in:   with(world(2*h+30*m, a, nextKey("N", 2*h, 10*h)), func(in *Input) { in.Trigger = "t1" }),
			want: Plan{
				Keys:      []Key{a, withTrigger(nextKey("N", 2*h, 3*h), "t1")},
				ActiveKID: "A", Published: []string{"A", "N"}, HandledTrigger: "t1", NextChange: at(3 * h),
			},
			events: []string{"N:RotationTriggered:N"},
		},
		{
			name: "trigger activates at once a Next key published long enough",
			in:   with(world(9*h+30*m, a, nextKey("N", 8*h, 10*h)), func(in *Input) { in.Trigger = "t1" }),
			want: Plan{
				Keys:      []Key{withTrigger(activeKey("N", 8*h, 9*h+30*m), "t1"), retiredKey("A", 0, 0, 9*h+30*m)},
				ActiveKID: "N", Published: []string{"N", "A"}, HandledTrigger: "t1", NextChange: at(12*h + 30*m),
			},
			events: []string{"N:RotationTriggered:N", "N:KeyActivated:N", "N:KeyRetired:A"},
		},
		{
			name: "trigger already handled per status",
			in:   with(world(2*h, a), func(in *Input) { in.Trigger, in.LastTrigger = "t1", "t1" }),
			want: Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, HandledTrigger: "t1", NextChange: at(9 * h)},
		},
		{
			name: "trigger already handled per a key's record, status lost",
			in:   with(world(2*h, withTrigger(a, "t1")), func(in *Input) { in.Trigger = "t1" }),
			want: Plan{Keys: []Key{withTrigger(a, "t1")}, ActiveKID: "A", Published: []string{"A"}, HandledTrigger: "t1", NextChange: at(9 * h)},
		},
		{
			name: "trigger cleared: the last one stays recorded",
			in:   with(world(2*h, a), func(in *Input) { in.LastTrigger = "t1" }),
			want: Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, HandledTrigger: "t1", NextChange: at(9 * h)},
		},
		{
			name:   "trigger on a new tenant: the first key is the rotation",
			in:     Input{Now: at(0), Policy: pol, Trigger: "t1"},
			want:   Plan{Create: create(Active, 0, 0, 10*h, "t1"), HandledTrigger: "t1", NextChange: at(0)},
			events: []string{"N:KeyCreated:", "N:RotationTriggered:"},
		},

		// At most MaxKeys keys at once. full holds A Active and 9 Retired keys.
		{
			name: "trigger at the key limit waits, unhandled, until a key leaves",
			in:   with(full, func(in *Input) { in.Trigger = "t1" }),
			want: Plan{
				Keys: full.Keys, ActiveKID: "A", Published: fullPublished, NextChange: at(9*h + 31*m),
				Blocked: `rotationTrigger "t1" waits: 10 keys are held, the most allowed; the next one leaves at 2030-01-01T09:31:00Z`,
			},
		},
		{
			name: "successor at the key limit waits; the Active key signs on",
			in:   with(full, func(in *Input) { in.Now = at(9 * h) }),
			want: Plan{
				Keys: full.Keys, ActiveKID: "A", Published: fullPublished, NextChange: at(9*h + 31*m),
				Blocked: "the successor of A waits (A keeps signing): 10 keys are held, the most allowed; the next one leaves at 2030-01-01T09:31:00Z",
			},
		},
		{
			name: "revoking the Active key at the key limit still makes its successor",
			in:   with(full, func(in *Input) { in.Revoked = []string{"A"} }),
			want: Plan{
				Keys: full.Keys[1:], Create: create(Active, 2*h, 2*h, 12*h, ""), Delete: []string{"A"},
				Published: fullPublished[1:], NextChange: at(2 * h),
			},
			events: []string{"W:KeyRevoked:A", "W:RevokedActiveKey:A", "N:KeyCreated:"},
		},

		// A workload mounting the signing Secret may sign with the old key
		// until kubelet refreshes the mount: the overlap counts from then.
		{
			name: "signing propagation delays the removal of a replaced key",
			in:   with(world(10*h, a, n), func(in *Input) { in.Policy.SigningPropagation = 2 * m }),
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 10*h), func() Key {
					k := retiredKey("A", 0, 0, 10*h)
					k.RemovesAt = at(13*h + 2*m)
					return k
				}()},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(13*h + 2*m),
			},
			events: []string{"N:KeyActivated:N", "N:KeyRetired:A"},
		},

		// Rule 3, revocation.
		{
			name: "revoke Active with a Next: the Next signs at once",
			in:   with(world(9*h+30*m, a, n), func(in *Input) { in.Revoked = []string{"A"} }),
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 9*h+30*m)}, Delete: []string{"A"},
				ActiveKID: "N", Published: []string{"N"}, NextChange: at(18*h + 30*m),
			},
			events: []string{"W:KeyRevoked:A", "W:RevokedActiveKey:A", "N:KeyActivated:N"},
		},
		{
			name: "revoke Active without a Next: a new key signs at once; Retired keys stay",
			in: with(world(5*h, activeKey("A", 3*h, 4*h), retiredKey("R", -7*h, -6*h, 4*h)),
				func(in *Input) { in.Revoked = []string{"A"} }),
			want: Plan{
				Keys: []Key{retiredKey("R", -7*h, -6*h, 4*h)}, Create: create(Active, 5*h, 5*h, 15*h, ""),
				Delete: []string{"A"}, Published: []string{"R"}, NextChange: at(5 * h),
			},
			events: []string{"W:KeyRevoked:A", "W:RevokedActiveKey:A", "N:KeyCreated:"},
		},
		{
			name: "revoke Active and trigger: the new key is the rotation",
			in:   with(world(5*h, a), func(in *Input) { in.Revoked, in.Trigger = []string{"A"}, "t1" }),
			want: Plan{
				Create: create(Active, 5*h, 5*h, 15*h, "t1"), Delete: []string{"A"},
				HandledTrigger: "t1", NextChange: at(5 * h),
			},
			events: []string{"W:KeyRevoked:A", "W:RevokedActiveKey:A", "N:KeyCreated:", "N:RotationTriggered:"},
		},
		{
			name: "revoke Active with a Next and trigger: the Next signing at once is the rotation",
			in:   with(world(9*h+30*m, a, n), func(in *Input) { in.Revoked, in.Trigger = []string{"A"}, "t1" }),
			want: Plan{
				Keys: []Key{withTrigger(activeKey("N", 9*h, 9*h+30*m), "t1")}, Delete: []string{"A"},
				ActiveKID: "N", Published: []string{"N"}, HandledTrigger: "t1", NextChange: at(18*h + 30*m),
			},
			events: []string{"W:KeyRevoked:A", "W:RevokedActiveKey:A", "N:KeyActivated:N", "N:RotationTriggered:N"},
		},
		{
			// The re-plan sees the revoked key and the new one, both Active
			// since now; revoking before adopting keeps the new one whatever
			// the KIDs ("zz" > "new", the kid the runner gives the new key).
			name:   "revoke a key activated this very instant: the re-plan keeps the new key",
			in:     with(world(5*h, activeKey("zz", 4*h, 5*h)), func(in *Input) { in.Revoked = []string{"zz"} }),
			want:   Plan{Create: create(Active, 5*h, 5*h, 15*h, ""), Delete: []string{"zz"}, NextChange: at(5 * h)},
			events: []string{"W:KeyRevoked:zz", "W:RevokedActiveKey:zz", "N:KeyCreated:"},
		},
		{
			name: "revoke Next: a new successor is published, with its full pre-publication",
			in:   with(world(9*h+30*m, a, n), func(in *Input) { in.Revoked = []string{"N"} }),
			want: Plan{
				Keys: []Key{a}, Create: create(Next, 9*h+30*m, 10*h+30*m, 0, ""), Delete: []string{"N"},
				ActiveKID: "A", Published: []string{"A"}, NextChange: at(9*h + 30*m),
			},
			events: []string{"W:KeyRevoked:N", "N:KeyPublished:"},
		},
		{
			name: "revoke Retired: gone before its overlap ends",
			in:   with(world(10*h+30*m, activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h)), func(in *Input) { in.Revoked = []string{"A"} }),
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 10*h)}, Delete: []string{"A"},
				ActiveKID: "N", Published: []string{"N"}, NextChange: at(19 * h),
			},
			events: []string{"W:KeyRevoked:A"},
		},
		{
			name: "revoke an unknown kid: nothing happens",
			in:   with(world(5*h, a), func(in *Input) { in.Revoked = []string{"zz"} }),
			want: Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
		},
		{
			name: "revoke an orphan: unpublished at once",
			in: with(world(5*h, a), func(in *Input) {
				in.Orphans, in.PublishedKIDs, in.Revoked = []Key{orphan("O", 6*h)}, []string{"A", "O"}, []string{"O"}
			}),
			want:   Plan{Keys: []Key{a}, ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
			events: []string{"W:KeyRevoked:O"},
		},
		{
			name: "revoke one of two Active records: the other one stays, nothing is created",
			in: with(world(5*h, a, activeKey("B", 4*h, 5*h)), func(in *Input) {
				in.Revoked, in.SigningKID = []string{"B"}, "A"
			}),
			want:   Plan{Keys: []Key{a}, Delete: []string{"B"}, ActiveKID: "A", Published: []string{"A"}, NextChange: at(9 * h)},
			events: []string{"W:KeyRevoked:B", "W:RevokedActiveKey:B"},
		},

		// Rule 1, suspend.
		{
			name: "suspend: nothing due happens, revocations wait, no NextChange",
			in: with(world(13*h, a, n, retiredKey("R", -11*h, -10*h, 0)), func(in *Input) {
				in.Suspend, in.Trigger, in.LastTrigger, in.Revoked = true, "t2", "t1", []string{"N", "zz", "N"}
			}),
			want: Plan{
				Keys: []Key{a, n, retiredKey("R", -11*h, -10*h, 0)}, ActiveKID: "A", Published: []string{"A", "N", "R"},
				HandledTrigger: "t1", Suspended: true, PendingRevocations: []string{"N"},
			},
		},
		{
			name: "suspend leaves the ConfigMap and the signing Secret as they are",
			in: Input{
				Now: at(10*h + m), Policy: pol, Suspend: true,
				// A crash after the records: N is recorded Active but A still
				// signs, and M was stored but never published.
				Keys:          []Key{activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h), nextKey("M", 10*h, 20*h)},
				PublishedKIDs: []string{"A", "N"}, SigningKID: "A",
			},
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 10*h), nextKey("M", 10*h, 20*h), retiredKey("A", 0, 0, 10*h)},
				ActiveKID: "A", Published: []string{"N", "A"}, Suspended: true,
			},
		},
		{
			name: "suspend before the first key: nothing",
			in:   Input{Now: at(0), Policy: pol, Suspend: true, Trigger: "t1"},
			want: Plan{Suspended: true},
		},

		// Downtime.
		{
			name: "downtime: old keys removed, successor published now, old key signs meanwhile",
			in:   world(100*h, a, retiredKey("R", -11*h, -10*h, 0)),
			want: Plan{
				Keys: []Key{a}, Create: create(Next, 100*h, 101*h, 0, ""), Delete: []string{"R"},
				ActiveKID: "A", Published: []string{"A"}, NextChange: at(100 * h),
			},
			events: []string{"N:KeyRemoved:R", "N:KeyPublished:"},
		},
		{
			name: "downtime: successor activates PrePublish later, old key kept Overlap from then",
			in:   world(101*h, a, nextKey("N", 100*h, 101*h)),
			want: Plan{
				Keys:      []Key{activeKey("N", 100*h, 101*h), retiredKey("A", 0, 0, 101*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(104 * h),
			},
			events: []string{"N:KeyActivated:N", "N:KeyRetired:A"},
		},
		{
			name: "downtime with a published Next: it activates now, the old key stays Overlap from now",
			in:   world(50*h, a, n),
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 50*h), retiredKey("A", 0, 0, 50*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(53 * h),
			},
			events: []string{"N:KeyActivated:N", "N:KeyRetired:A"},
		},

		// Rule 2, adoption after a crash.
		{
			name: "two Active records: the last activated stays, the other is retired now",
			in: with(world(11*h, a, activeKey("N", 9*h, 10*h)), func(in *Input) {
				in.SigningKID = "A" // crashed after writing N's record
			}),
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 11*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(14 * h),
			},
			events: []string{"W:AdoptedDuplicateActive:A"},
		},
		{
			name: "two Active records activated together: the greatest KID stays",
			in:   with(world(6*h, activeKey("B", 4*h, 5*h), activeKey("C", 4*h, 5*h)), func(in *Input) { in.SigningKID = "B" }),
			want: Plan{
				Keys:      []Key{activeKey("C", 4*h, 5*h), retiredKey("B", 4*h, 5*h, 6*h)},
				ActiveKID: "C", Published: []string{"C", "B"}, NextChange: at(9 * h),
			},
			events: []string{"W:AdoptedDuplicateActive:B"},
		},
		{
			name: "key missing from the ConfigMap: pre-publication restarts now",
			in:   with(world(10*h, a, n), func(in *Input) { in.PublishedKIDs = []string{"A"} }),
			want: Plan{
				Keys:      []Key{a, nextKey("N", 10*h, 10*h)},
				ActiveKID: "A", Published: []string{"A", "N"}, NextChange: at(11 * h),
			},
		},
		{
			name: "signing Secret lagging behind a retirement: the overlap counts from now",
			in: with(world(14*h, activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 10*h)), func(in *Input) {
				in.SigningKID = "A"
			}),
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 10*h), retiredKey("A", 0, 0, 14*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(17 * h),
			},
		},
		{
			name: "signing Secret holding a Next key: it is left Next, the Active key signs",
			in:   with(world(9*h+30*m, a, n), func(in *Input) { in.SigningKID = "N" }),
			want: Plan{Keys: []Key{a, n}, ActiveKID: "A", Published: []string{"A", "N"}, NextChange: at(10 * h)},
		},
		{
			name: "Retired record without RemovesAt: kept Overlap from now",
			in: world(12*h, activeKey("N", 9*h, 10*h),
				Key{KID: "A", Algorithm: "ES256", State: Retired, PublishedAt: at(0), ActivatesAt: at(0), RotatesAt: at(10 * h), RetiredAt: at(10 * h)}),
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 10*h),
					{KID: "A", Algorithm: "ES256", State: Retired, PublishedAt: at(0), ActivatesAt: at(0), RotatesAt: at(10 * h), RetiredAt: at(10 * h), RemovesAt: at(15 * h)}},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(15 * h),
			},
		},

		// Lost keys and orphans.
		{
			name: "Active Secret deleted by hand, with a Next: the Next signs at once",
			in: Input{
				Now: at(9*h + 30*m), Policy: pol, Keys: []Key{n},
				Orphans: []Key{orphan("A", 0)}, PublishedKIDs: []string{"A", "N"}, SigningKID: "A",
			},
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 9*h+30*m)}, Orphans: []Key{orphan("A", 12*h+30*m)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(12*h + 30*m),
			},
			events: []string{"W:KeySecretLost:A", "W:ActiveKeySecretLost:A", "N:KeyActivated:N"},
		},
		{
			name: "Active Secret deleted by hand, no other key: a new key signs at once",
			in: Input{
				Now: at(5 * h), Policy: pol,
				Orphans: []Key{orphan("A", 0)}, PublishedKIDs: []string{"A"}, SigningKID: "A",
			},
			want: Plan{
				Create: create(Active, 5*h, 5*h, 15*h, ""), Orphans: []Key{orphan("A", 8*h)},
				Published: []string{"A"}, NextChange: at(5 * h),
			},
			events: []string{"W:KeySecretLost:A", "W:ActiveKeySecretLost:A", "N:KeyCreated:"},
		},
		{
			name:   "signing key lost with no trace: a new key signs at once",
			in:     Input{Now: at(5 * h), Policy: pol, SigningKID: "A"},
			want:   Plan{Create: create(Active, 5*h, 5*h, 15*h, ""), NextChange: at(5 * h)},
			events: []string{"W:ActiveKeySecretLost:A", "N:KeyCreated:"},
		},
		{
			name: "no Active record, a Retired key signing: a new key signs at once, the old one stays Overlap",
			in:   with(world(5*h, retiredKey("R", -7*h, -6*h, 4*h)), func(in *Input) { in.SigningKID = "R" }),
			want: Plan{
				Keys:   []Key{retiredKey("R", -7*h, -6*h, 5*h)},
				Create: create(Active, 5*h, 5*h, 15*h, ""), Published: []string{"R"}, NextChange: at(5 * h),
			},
			events: []string{"W:ActiveKeySecretLost:", "N:KeyCreated:"},
		},
		{
			name: "orphans: unknown removal time set, known kept, ended removed",
			in: with(world(5*h, a), func(in *Input) {
				in.Orphans = []Key{orphan("O1", 0), orphan("O2", 6*h), orphan("O3", 5*h)}
				in.PublishedKIDs = []string{"A", "O1", "O2", "O3"}
			}),
			want: Plan{
				Keys: []Key{a}, Orphans: []Key{orphan("O1", 8*h), orphan("O2", 6*h)},
				ActiveKID: "A", Published: []string{"A", "O1", "O2"}, NextChange: at(6 * h),
			},
			events: []string{"W:KeySecretLost:O1", "N:KeyRemoved:O3"},
		},
		{
			name: "orphan still signing: its known removal time is extended to Overlap from now",
			in: Input{
				Now: at(11 * h), Policy: pol, Keys: []Key{activeKey("N", 9*h, 10*h)},
				Orphans: []Key{orphan("A", 12*h)}, PublishedKIDs: []string{"N", "A"}, SigningKID: "A",
			},
			want: Plan{
				Keys: []Key{activeKey("N", 9*h, 10*h)}, Orphans: []Key{orphan("A", 14*h)},
				ActiveKID: "N", Published: []string{"N", "A"}, NextChange: at(14 * h),
			},
		},

		// Policy edits on a live object.
		{
			name: "policy edit: existing RotatesAt and RemovesAt unchanged",
			in: with(world(10*h, activeKey("A", 7*h, 8*h), retiredKey("R", -3*h, -2*h, 8*h)), func(in *Input) {
				in.Policy = Policy{Algorithm: "RS256", RSAKeySize: 4096, RotationPeriod: 20 * h, PrePublish: 2 * h, Overlap: 6 * h, TokenTTL: 2 * h}
			}),
			want: Plan{
				Keys:      []Key{activeKey("A", 7*h, 8*h), retiredKey("R", -3*h, -2*h, 8*h)},
				ActiveKID: "A", Published: []string{"A", "R"}, NextChange: at(11 * h),
			},
		},
		{
			name: "policy edit: the next key uses the new algorithm and PrePublish",
			in: with(world(16*h, activeKey("A", 7*h, 8*h)), func(in *Input) {
				in.Policy = Policy{Algorithm: "RS256", RSAKeySize: 4096, RotationPeriod: 20 * h, PrePublish: 2 * h, Overlap: 6 * h, TokenTTL: 2 * h}
			}),
			want: Plan{
				Keys: []Key{activeKey("A", 7*h, 8*h)},
				Create: &NewKey{Algorithm: "RS256", RSAKeySize: 4096, Record: Key{
					Algorithm: "RS256", State: Next, PublishedAt: at(16 * h), ActivatesAt: at(18 * h)}},
				ActiveKID: "A", Published: []string{"A"}, NextChange: at(16 * h),
			},
			events: []string{"N:KeyPublished:"},
		},

		// NextChange.
		{
			name: "NextChange is the earliest of activation, removal and orphan removal",
			in: with(world(10*h+m, activeKey("N", 9*h, 10*h), nextKey("M", 10*h, 20*h), retiredKey("A", 0, 0, 10*h)), func(in *Input) {
				in.Orphans = []Key{orphan("O", 12*h)}
				in.PublishedKIDs = append(in.PublishedKIDs, "O")
			}),
			want: Plan{
				Keys:      []Key{activeKey("N", 9*h, 10*h), nextKey("M", 10*h, 20*h), retiredKey("A", 0, 0, 10*h)},
				Orphans:   []Key{orphan("O", 12*h)},
				ActiveKID: "N", Published: []string{"N", "M", "A", "O"}, NextChange: at(12 * h),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, problems := decideChecked(tc.in)
			for _, p := range problems {
				t.Error(p)
			}
			want := tc.want
			for _, e := range tc.events {
				f := strings.SplitN(e, ":", 3)
				want.Events = append(want.Events, Event{Type: map[string]string{"N": EventNormal, "W": EventWarning}[f[0]], Reason: f[1], KID: f[2]})
			}
			if got, want := fmtPlan(plan), fmtPlan(want); got != want {
				t.Errorf("plan:\n%swant:\n%s", got, want)
			}
			for _, e := range plan.Events {
				if e.Message == "" {
					t.Errorf("event %s without a message", fmtEvent(e))
				}
			}

			in, settled := tc.in, plan
			if plan.Create != nil {
				var created Key
				in, created = withCreated(tc.in, plan, "new")
				settled, problems = decideChecked(in)
				problems = append(problems, replanProblems(plan, created, settled)...)
				for _, p := range problems {
					t.Errorf("re-plan: %s", p)
				}
			}
			for _, p := range settledProblems(in, settled) {
				t.Error(p)
			}
		})
	}
}

// The writes between a plan and the signing Secret's switch take time: the
// key the plan retired stopped signing at the switch, and its removal
// counts from then, never from earlier.
func TestSwitched(t *testing.T) {
	a, n := activeKey("A", 0, 0), nextKey("N", 9*h, 10*h)
	plan := Decide(world(10*h, a, n)) // N activates, A retires at 10h
	cases := []struct {
		name     string
		previous string
		at       time.Duration
		removes  time.Duration // A's removal after the switch; 0: no record to write
	}{
		{"the switch 200 ms after the plan", "A", 10*h + 200*time.Millisecond, 13*h + 200*time.Millisecond},
		{"the switch at the plan's instant", "A", 10 * h, 0},
		{"a clock behind the plan's: never earlier", "A", 10*h - time.Second, 0},
		{"the previous signer is not a key the plan retired", "N", 10*h + time.Second, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, rec := Switched(pol, plan, tc.previous, at(tc.at))
			if tc.removes == 0 {
				if rec != nil || fmtPlan(got) != fmtPlan(plan) {
					t.Fatalf("changed the plan: %v\n%s", rec, fmtPlan(got))
				}
				return
			}
			if rec == nil || rec.KID != "A" || !rec.RetiredAt.Equal(at(tc.at)) || !rec.RemovesAt.Equal(at(tc.removes)) {
				t.Fatalf("record %+v, want A retired at %s, removed at %s", rec, tc.at, tc.removes)
			}
			if !got.Keys[1].RemovesAt.Equal(at(tc.removes)) || !plan.Keys[1].RemovesAt.Equal(at(13*h)) {
				t.Fatalf("the plan's keys: %s (the input plan must stay as it was)", fmtPlan(got))
			}
		})
	}
}
