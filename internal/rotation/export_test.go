package rotation

// The simulation (invariant_test.go) is in package rotation_test, so that it
// can use rotationtest, which imports this package. These are the checks of
// helpers_test.go it shares with the table tests.
var (
	T0              = t0
	FmtTime         = fmtTime
	FmtPlan         = fmtPlan
	SameKey         = sameKey
	DecideChecked   = decideChecked
	ReplanProblems  = replanProblems
	SettledProblems = settledProblems
	PlanProblems    = planProblems
)
