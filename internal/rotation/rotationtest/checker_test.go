package rotationtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/rotation"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	pp = 10 * time.Minute // PrePublish
	ov = 30 * time.Minute // Overlap
)

// obs is an observation at t0 + minute, with the default policy.
func obs(minute int, kind Kind, published, signing string, records ...rotation.Key) Observation {
	var kids []string
	if published != "" {
		kids = strings.Split(published, ",")
	}
	return Observation{
		At: t0.Add(time.Duration(minute) * time.Minute), Kind: kind, PrePublish: pp, Overlap: ov,
		Published: kids, Signing: signing, Records: records,
	}
}

func with(o Observation, edit func(*Observation)) Observation {
	edit(&o)
	return o
}

func revoking(o Observation, kids ...string) Observation {
	return with(o, func(o *Observation) { o.Revoked = kids })
}

func active(kid string) rotation.Key { return rotation.Key{KID: kid, State: rotation.Active} }
func next(kid string) rotation.Key   { return rotation.Key{KID: kid, State: rotation.Next} }
func retired(kid string, removesAtMinute int) rotation.Key {
	return rotation.Key{KID: kid, State: rotation.Retired, RemovesAt: t0.Add(time.Duration(removesAtMinute) * time.Minute)}
}

// rotation is one healthy rotation: A signs from t0, N is published at 10m
// and signs from 20m, A leaves at 50m (overlap 30m). The observations at
// 20m are one per write, as the simulation makes them.
var healthy = []Observation{
	obs(0, Reconciled, "A", "A", active("A")),
	obs(10, Reconciled, "A,N", "A", active("A"), next("N")),
	obs(20, Partial, "A,N", "A", active("A"), active("N")), // N's record first
	obs(20, Partial, "A,N", "A", retired("A", 50), active("N")),
	obs(20, Partial, "N,A", "A", retired("A", 50), active("N")),
	obs(20, Reconciled, "N,A", "N", retired("A", 50), active("N")),
	obs(50, Reconciled, "N", "N", active("N")),
}

// revokeSigner revokes A, the signing key, at 10m: it leaves at once and
// N, created then, signs at once.
var revokeSigner = []Observation{
	obs(0, Reconciled, "A", "A", active("A")),
	revoking(obs(10, ByHand, "A", "A", active("A")), "A"),
	revoking(obs(10, Partial, "A", "A", active("A"), active("N")), "A"),
	revoking(obs(10, Partial, "N", "A", active("A"), active("N")), "A"),
	revoking(obs(10, Partial, "N", "N", active("A"), active("N")), "A"),
	revoking(obs(10, Reconciled, "N", "N", active("N")), "A"),
}

func TestChecker(t *testing.T) {
	cases := []struct {
		name    string
		history []Observation
		want    []string // "<observation index>: invariant <n> <kid>"
	}{
		{name: "a healthy rotation", history: healthy},
		{name: "the successor of a revoked signing key signs at once", history: revokeSigner},
		{
			name: "a key lost by hand: its successor signs at once, the orphan stays",
			history: []Observation{
				obs(0, Reconciled, "A", "A", active("A")),
				obs(5, ByHand, "A", "A"),
				obs(6, Partial, "A", "A", active("B")),
				obs(6, Partial, "B,A", "A", active("B")),
				obs(6, Reconciled, "B,A", "B", active("B")),
				obs(36, Reconciled, "B", "B", active("B")),
			},
		},
		{
			name: "the successor of a revoked Active record signs at once, though it never signed",
			history: []Observation{
				healthy[0], healthy[1], healthy[2], // a crash leaves N recorded Active, A signing
				revoking(obs(21, ByHand, "A,N", "A", active("A"), active("N")), "N"),
				revoking(obs(21, Partial, "A,N", "A", retired("A", 51), active("M")), "N"),
				revoking(obs(21, Partial, "M,A", "A", retired("A", 51), active("M")), "N"),
				revoking(obs(21, Reconciled, "M,A", "M", retired("A", 51), active("M")), "N"),
			},
		},
		{
			name: "the successor of an Active record deleted by hand signs at once",
			history: []Observation{
				healthy[0], healthy[1], healthy[2], // a crash leaves N recorded Active, A signing
				obs(21, ByHand, "A,N", "A", active("A")),
				obs(22, Partial, "A,N", "A", retired("A", 52), active("M")),
				obs(22, Partial, "M,A,N", "A", retired("A", 52), active("M")),
				obs(22, Reconciled, "M,A,N", "M", retired("A", 52), active("M")),
			},
		},
		{
			name: "a key unpublished while revoked may sign on after the list is cleared",
			history: []Observation{
				revokeSigner[0], revokeSigner[1], revokeSigner[2], revokeSigner[3], // crash before the signing Secret
				obs(11, ByHand, "N", "A", active("A"), active("N")),
				obs(11, Partial, "N", "A", retired("A", 41), active("N")),
				obs(11, Partial, "N,A", "A", retired("A", 41), active("N")),
				obs(11, Reconciled, "N,A", "N", retired("A", 41), active("N")),
			},
		},
		{
			name: "a reconcile may stop between two Active records; a suspended one completes with them",
			history: []Observation{
				healthy[0], healthy[1], healthy[2],
				with(obs(21, Reconciled, "A,N", "A", active("A"), active("N")), func(o *Observation) { o.Suspended = true }),
			},
		},
		{
			name: "hand edits are not judged: the ConfigMap deleted, then the signing Secret",
			history: []Observation{
				obs(0, Reconciled, "A", "A", active("A")),
				obs(1, ByHand, "", "A", active("A")),
				obs(1, ByHand, "", "", active("A")),
				obs(2, Reconciled, "A", "A", active("A")),
			},
		},
		{
			name: "pre-publication is judged with the PrePublish in force when the record became Active",
			history: []Observation{
				healthy[0], healthy[1], healthy[2],
				with(obs(21, Reconciled, "N,A", "N", retired("A", 51), active("N")), func(o *Observation) { o.PrePublish = time.Hour }),
			},
		},

		{
			name:    "invariant 1: the signing key is not published",
			history: []Observation{obs(0, Reconciled, "", "A", active("A"))},
			want:    []string{"0: invariant 1 A"},
		},
		{
			name: "invariant 1: the signing key leaves the documents",
			history: []Observation{
				healthy[0], healthy[1],
				obs(11, Partial, "N", "A", active("A"), next("N")),
			},
			want: []string{"2: invariant 1 A"},
		},
		{
			name: "invariant 2: a key signs after less than PrePublish",
			history: []Observation{
				healthy[0],
				obs(5, Reconciled, "A,N", "A", active("A"), next("N")),
				obs(10, Reconciled, "N,A", "N", retired("A", 40), active("N")),
			},
			want: []string{"2: invariant 2 N"},
		},
		{
			name: "invariant 2: a key signs as it is published",
			history: []Observation{
				healthy[0],
				obs(20, Reconciled, "N,A", "N", retired("A", 50), active("N")),
			},
			want: []string{"1: invariant 2 N"},
		},
		{
			name: "invariant 2: a longer PrePublish in force when the record becomes Active counts",
			history: []Observation{
				healthy[0], healthy[1],
				with(obs(20, Reconciled, "N,A", "N", retired("A", 50), active("N")), func(o *Observation) { o.PrePublish = time.Hour }),
			},
			want: []string{"2: invariant 2 N"},
		},
		{
			name: "invariant 2: a revocation excuses one successor, not the next",
			history: slices.Concat(revokeSigner, []Observation{
				obs(15, Reconciled, "N,P", "N", active("N"), next("P")),
				obs(16, Reconciled, "P,N", "P", active("P"), retired("N", 46)),
			}),
			want: []string{"7: invariant 2 P"},
		},
		{
			name: "invariant 3: a key leaves before its overlap ends",
			history: slices.Concat(healthy[:6], []Observation{
				obs(49, Reconciled, "N", "N", retired("A", 50), active("N")),
			}),
			want: []string{"6: invariant 3 A"},
		},
		{
			name: "invariant 3: the Overlap in force when the key stopped signing counts",
			history: slices.Concat(healthy[:6], []Observation{
				with(obs(40, Reconciled, "N", "N", retired("A", 50), active("N")), func(o *Observation) { o.Overlap = 10 * time.Minute }),
			}),
			want: []string{"6: invariant 3 A"},
		},
		{
			name: "invariant 5: the record of the signing key disappears",
			history: []Observation{
				healthy[0],
				obs(1, Reconciled, "A", "A"),
			},
			want: []string{"1: invariant 5 A"},
		},
		{
			name: "invariant 5: a Retired record disappears before its RemovesAt",
			history: slices.Concat(healthy[:6], []Observation{
				obs(49, Partial, "N,A", "N", active("N")),
			}),
			want: []string{"6: invariant 5 A"},
		},
		{
			name: "invariant 5: two Active records after a reconcile",
			history: []Observation{
				healthy[0], healthy[1], healthy[2],
				obs(21, Reconciled, "A,N", "A", active("A"), active("N")),
			},
			want: []string{"3: invariant 5 A"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New(t0)
			var got []string
			for i, o := range tc.history {
				for _, v := range c.Observe(o) {
					got = append(got, fmt.Sprintf("%d: invariant %d %s", i, v.Invariant, v.KID))
					if v.Message == "" || !v.At.Equal(o.At) {
						t.Errorf("violation %+v: no message, or not at its observation's time", v)
					}
					t.Logf("observation %d: %s", i, v)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCheckerCounts: the counts say what was judged and passed, and the
// activations are the signing keys in order.
func TestCheckerCounts(t *testing.T) {
	c := New(t0)
	for _, o := range slices.Concat(healthy, []Observation{
		revoking(obs(60, Partial, "P,N", "N", active("N"), active("P")), "N"),
		revoking(obs(60, Partial, "P", "N", active("N"), active("P")), "N"),
		revoking(obs(60, Reconciled, "P", "P", active("P")), "N"),
	}) {
		if vs := c.Observe(o); len(vs) > 0 {
			t.Fatalf("violations %v", vs)
		}
	}
	if got, want := c.Counts(), (Counts{PrePublishedSwitches: 1, ExemptSwitches: 2, UnpublishedInTime: 1, Removed: 1}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	var got []string
	for _, a := range c.Activations() {
		got = append(got, fmt.Sprintf("%s@%s exempt=%v", a.KID, a.At.Sub(t0), a.Exempt))
	}
	if want := []string{"A@0s exempt=true", "N@20m0s exempt=false", "P@1h0m0s exempt=true"}; !slices.Equal(got, want) {
		t.Errorf("activations %q, want %q", got, want)
	}
}
